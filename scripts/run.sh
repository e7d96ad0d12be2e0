#!/usr/bin/env bash
# Set up (once) and run the main job: the durahub engine (gRPC 127.0.0.1:50001, HTTP :3500, SQLite under
# ./.durahub/) with the order-service example app on http://127.0.0.1:8000 (docs at /docs).
# Extra arguments go to `durahub run`, e.g. `./scripts/run.sh --db /tmp/orders.db`.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
if ! .venv19/bin/python -c "import durahub, fastapi, uvicorn, uvloop" 2>/dev/null; then
  "$PYTHON" -m venv .venv19
  .venv19/bin/python -m pip install -q --upgrade pip
  .venv19/bin/python -m pip install -q -e ".[test]"
fi
export PATH="$PWD/.venv19/bin:$PATH"
exec durahub run --app-id order-service "$@" -- uvicorn examples.order_service.app:app --host 127.0.0.1 --port 8000
