"""Reliability suite (see faultlib.py). The parent tests/conftest.py provides the server fixtures; this
only puts this directory on sys.path so the modules here can import faultlib.

DURAHUB_FAULTS_LONG=1 runs every test at full size (10,000 waiting workflows, 100 kills, ...).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
