"""The store's tables, their versioned migrations, and bringing a database up to date."""

from __future__ import annotations

import logging
from collections.abc import Callable

from durahub.core.apps import check_app_id
from durahub.store.runner import Conn, Dialect

log = logging.getLogger("durahub.store")

# The version-1 schema; `{blob}` and `{serial_pk}` are the dialect's type names (`Dialect.blob_type`,
# `Dialect.serial_pk`).
SCHEMA_TEMPLATE = """
CREATE TABLE IF NOT EXISTS durahub_meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS instances (
    instance_id TEXT PRIMARY KEY,
    name TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    execution_id TEXT NOT NULL DEFAULT '',
    generation INTEGER NOT NULL DEFAULT 0,
    created_us BIGINT NOT NULL,
    updated_us BIGINT NOT NULL,
    completed_us BIGINT,
    input TEXT,
    output TEXT,
    custom_status TEXT,
    failure {blob},
    parent_instance_id TEXT,
    parent_task_id INTEGER,
    history_len INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS instances_status ON instances(status);
CREATE INDEX IF NOT EXISTS instances_parent ON instances(parent_instance_id);
CREATE INDEX IF NOT EXISTS instances_created ON instances(created_us);
CREATE TABLE IF NOT EXISTS history (
    instance_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    payload {blob} NOT NULL,
    PRIMARY KEY (instance_id, seq)
);
CREATE TABLE IF NOT EXISTS inbox (
    seq {serial_pk},
    instance_id TEXT NOT NULL,
    visible_us BIGINT NOT NULL,
    generation INTEGER,
    payload {blob} NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_instance ON inbox(instance_id, seq);
CREATE INDEX IF NOT EXISTS inbox_visible ON inbox(visible_us);
CREATE TABLE IF NOT EXISTS tasks (
    seq {serial_pk},
    instance_id TEXT NOT NULL,
    generation INTEGER NOT NULL,
    task_id INTEGER NOT NULL,
    payload {blob} NOT NULL
);
CREATE INDEX IF NOT EXISTS tasks_instance ON tasks(instance_id);
"""

#: The version-1 schema as SQLite spells it (what `schema_statements` gives `SqliteStore.dialect`): tests build
#: database files of that version from it.
SCHEMA = SCHEMA_TEMPLATE.format(blob="BLOB", serial_pk="INTEGER PRIMARY KEY AUTOINCREMENT")

# Versioned migrations applied in order after the version-1 schema above; the database records the version
# it is at. Each entry is portable SQL, the same in every dialect; `{default_app}` stands for the app id the
# migrating engine serves by default (a valid app id: letters, digits, `-` and `_`, safe inside a literal),
# `{blob}` for the dialect's binary type.
MIGRATIONS: dict[int, list[str]] = {
    # 2: leases, so several engine processes can share one database (PostgreSQL).
    2: [
        "ALTER TABLE instances ADD COLUMN lease_owner TEXT",
        "ALTER TABLE instances ADD COLUMN lease_until BIGINT",
        "ALTER TABLE tasks ADD COLUMN lease_owner TEXT",
        "ALTER TABLE tasks ADD COLUMN lease_until BIGINT",
    ],
    # 3: apps. Instances are named by (app, instance id): every instance_id column holds the instance key
    # "<app>|<id>" (`durahub.core.apps`), and existing instances become the default app's. Each activity task
    # records the app whose workers run it (a cross-app call's target).
    3: [
        "UPDATE instances SET instance_id = '{default_app}|' || instance_id,"
        " parent_instance_id = CASE WHEN parent_instance_id IS NULL THEN NULL"
        " ELSE '{default_app}|' || parent_instance_id END",
        "UPDATE history SET instance_id = '{default_app}|' || instance_id",
        "UPDATE inbox SET instance_id = '{default_app}|' || instance_id",
        "UPDATE tasks SET instance_id = '{default_app}|' || instance_id",
        "ALTER TABLE tasks ADD COLUMN app_id TEXT",
        "UPDATE tasks SET app_id = '{default_app}'",
    ],
    # 4: finished instances by status and completion time, for retention's oldest-first purge; running ones
    # (no completion time) stay out of it and cost no upkeep.
    4: [
        "CREATE INDEX IF NOT EXISTS instances_completed ON instances(status, completed_us)"
        " WHERE completed_us IS NOT NULL",
    ],
    # 5: history propagation's incoming history (a serialized `PropagatedHistory` from the caller), an
    # instance's tags (JSON) and when its first turn started (Dapr 1.19's `startedAt`).
    5: [
        "ALTER TABLE instances ADD COLUMN incoming_history {blob}",
        "ALTER TABLE instances ADD COLUMN tags TEXT",
        "ALTER TABLE instances ADD COLUMN started_us BIGINT",
    ],
}
SCHEMA_VERSION = max(MIGRATIONS)


def schema_statements(dialect: Dialect) -> list[str]:
    """The version-1 schema in the dialect's spelling, one statement per entry."""
    text = SCHEMA_TEMPLATE.format(blob=dialect.blob_type, serial_pk=dialect.serial_pk)
    return [stmt for stmt in text.split(";") if stmt.strip()]


def migrate(conn: Conn, dialect: Dialect, describe: str, lock_schema: Callable[[Conn], None] | None = None,
            default_app: str = "durahub") -> None:
    """Create the schema if missing and apply the migrations it lacks, in one transaction on `conn`. Refuses
    (RuntimeError, nothing changed) a database newer than this code. `describe` names the database in messages;
    `lock_schema(conn)`, run first inside the transaction, serializes processes starting at once where the
    transaction's own lock does not (SQLite's `BEGIN IMMEDIATE` does); `default_app` gets the instances of a
    database from before apps."""
    check_app_id(default_app)
    conn.execute(dialect.begin)
    try:
        if lock_schema is not None:
            lock_schema(conn)
        for statement in schema_statements(dialect):
            conn.execute(statement)
        row = conn.execute("SELECT value FROM durahub_meta WHERE key = 'schema_version'").fetchone()
        if row is None:
            conn.execute("INSERT INTO durahub_meta (key, value) VALUES ('schema_version', '1')")
            version = 1
        else:
            version = int(row[0])
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"database {describe} has schema version {version}, newer than this durahub supports"
                f" ({SCHEMA_VERSION}); upgrade durahub"
            )
        for target in range(version + 1, SCHEMA_VERSION + 1):
            for statement in MIGRATIONS[target]:
                conn.execute(statement.replace("{default_app}", default_app).replace("{blob}", dialect.blob_type))
            conn.execute("UPDATE durahub_meta SET value = ? WHERE key = 'schema_version'", (str(target),))
            log.info("event=schema_migrated database=%s version=%d", describe, target)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
