#!/usr/bin/env bash
# Set up (once) and run the durahub engine on 127.0.0.1:50001 (gRPC) and :3500 (HTTP).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv19/bin/durahub ]; then
  python3 -m venv .venv19
  .venv19/bin/pip install -q --upgrade pip
  .venv19/bin/pip install -q -e ".[test]"
fi
exec .venv19/bin/durahub serve "$@"
