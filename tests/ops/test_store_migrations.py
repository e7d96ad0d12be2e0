"""The server refuses a database file with a newer schema version than it supports, and says so."""

from __future__ import annotations

import sqlite3
import subprocess
import sys

import pytest

from testsupport.databases import sqlite_v1_database as _v1_database

pytest.importorskip("durahub", reason="store tests run where durahub is installed")


def test_server_refuses_a_newer_database(tmp_path) -> None:
    path = str(tmp_path / "future.db")
    _v1_database(path)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE durahub_meta SET value = '999' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    out = subprocess.run([sys.executable, "-m", "durahub", "serve", "--db", path, "--grpc-port", "0", "--http-port",
                          "0"], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert "newer than this durahub supports" in out.stderr
