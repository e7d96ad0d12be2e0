#!/usr/bin/env bash
# Run the durahub test suite against both supported SDK generations.
#
#   .venv19: dapr[workflow]==1.19.* + durahub (editable) + test tools; runs ruff, mypy and pytest.
#   .venv18: dapr==1.18.3 + dapr-ext-workflow==1.18.3 + test tools, durahub NOT installed;
#            the server is launched with .venv19's interpreter (DURAHUB_SERVER_PYTHON).
#   .venv16: dapr==1.16.* (+ dapr-ext-workflow 1.16), the last DaprClient with workflow methods: runs the
#            Dapr runtime API tests (tests/protocol/test_dapr_runtime_api.py).
#   The 1.19 suite runs a second time with every server on PostgreSQL (DURAHUB_TEST_BACKEND=postgres,
#   local server at DURAHUB_TEST_PG, default postgresql://postgres@127.0.0.1:5432/test).
#
# Tests are organised by layer (tests/README.md): tests/{unit,sdk,protocol,ops,reliability} and examples/tests,
# with one shared harness in testsupport/ (importable in every venv through pytest's `pythonpath`).
#
# Missing virtualenvs are created. Extra arguments are passed to every pytest run, e.g.
#   scripts/test.sh -k approval -x
# Environment: PYTHON (interpreter used to create venvs, default python3.11 or python3),
#   SKIP_V18=1 / SKIP_V19=1 / SKIP_V16=1 / SKIP_PG=1 to skip a pass, SKIP_RUFF=1, SKIP_MYPY=1, SERIAL=1 to run
#   the passes one after another instead of in two parallel lanes.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
V19="$ROOT/.venv19"
V18="$ROOT/.venv18"
V16="$ROOT/.venv16"

log() { printf '\n==> %s\n' "$*"; }

setup_v19() {
    if [[ ! -x "$V19/bin/python" ]]; then
        log "creating $V19"
        "$PYTHON" -m venv "$V19" || return 1
        "$V19/bin/python" -m pip install -q --upgrade pip || return 1
    fi
    if ! "$V19/bin/python" -c "import durahub, uvloop, dapr.ext.workflow, pytest, pytest_timeout, httpx, prometheus_client, opentelemetry.sdk, opentelemetry.proto, opentelemetry.instrumentation.grpc, playwright" 2>/dev/null \
        || ! [[ -x "$V19/bin/ruff" ]] || ! [[ -x "$V19/bin/mypy" ]]; then
        log "installing durahub[test] into $V19"
        "$V19/bin/python" -m pip install -q -e ".[test]" || return 1
    fi
}

setup_v18() {
    if [[ ! -x "$V18/bin/python" ]]; then
        log "creating $V18"
        "$PYTHON" -m venv "$V18" || return 1
        "$V18/bin/python" -m pip install -q --upgrade pip || return 1
    fi
    if ! "$V18/bin/python" -c "import dapr.ext.workflow, pytest, pytest_timeout, httpx, fastapi, uvicorn, hypothesis" 2>/dev/null; then
        log "installing the legacy SDK into $V18"
        "$V18/bin/python" -m pip install -q \
            "dapr==1.18.3" "dapr-ext-workflow==1.18.3" pytest pytest-timeout httpx fastapi uvicorn hypothesis || return 1
    fi
}

setup_v16() {
    if [[ ! -x "$V16/bin/python" ]]; then
        log "creating $V16"
        "$PYTHON" -m venv "$V16" || return 1
        "$V16/bin/python" -m pip install -q --upgrade pip || return 1
    fi
    if ! "$V16/bin/python" -c "import dapr.clients, dapr.ext.workflow, pytest, pytest_timeout, httpx" 2>/dev/null; then
        log "installing dapr 1.16 into $V16"
        "$V16/bin/python" -m pip install -q \
            "dapr==1.16.*" "dapr-ext-workflow==1.16.*" pytest pytest-timeout httpx || return 1
    fi
}

status=0
results=()

setup_v19 || { echo "failed to set up $V19" >&2; exit 2; }
if [[ "${SKIP_V18:-0}" != 1 ]]; then
    setup_v18 || { echo "failed to set up $V18" >&2; exit 2; }
fi
if [[ "${SKIP_V16:-0}" != 1 ]]; then
    setup_v16 || { echo "failed to set up $V16" >&2; exit 2; }
fi

if [[ "${SKIP_RUFF:-0}" != 1 ]]; then
    log "ruff check src tests examples bench testsupport"
    if "$V19/bin/ruff" check src tests examples bench testsupport; then
        results+=("ruff: ok")
    else
        results+=("ruff: FAILED"); status=1
    fi
fi

if [[ "${SKIP_MYPY:-0}" != 1 ]]; then
    log "mypy (pyproject.toml [tool.mypy])"
    if "$V19/bin/mypy"; then
        results+=("mypy: ok")
    else
        results+=("mypy: FAILED"); status=1
    fi
fi

# The passes run in two lanes at once (most of a pass is waiting on workflows, not CPU): lane 1 streams the
# SDK 1.19 pass and then the DaprClient 1.16 one; lane 2 runs the PostgreSQL pass and then the SDK 1.18.3 one
# with its output kept in a file and printed when lane 1 is done. Only lane 1 may use daprd's default ports
# (DURAHUB_TEST_DEFAULT_PORTS=0 in lane 2). SERIAL=1 runs everything in one lane, in order.
LANE2_LOG="$(mktemp "${TMPDIR:-/tmp}/durahub-lane2.XXXXXX")"
LANE2_RESULTS="$LANE2_LOG.results"
LANE1_RESULTS="$LANE2_LOG.lane1"

pass_19() {
    log "pytest with SDK 1.19 ($V19)"
    if env -u DURAHUB_SERVER_PYTHON "$V19/bin/python" -m pytest -p no:cacheprovider --durations=15 "$@"; then
        echo "pytest (SDK 1.19): ok" >> "$RESULTS"
    else
        echo "pytest (SDK 1.19): FAILED" >> "$RESULTS"
    fi
}

pass_18() {
    log "pytest with SDK 1.18.3 ($V18), server on $V19/bin/python"
    if DURAHUB_SERVER_PYTHON="$V19/bin/python" "$V18/bin/python" -m pytest -p no:cacheprovider --durations=15 "$@"; then
        echo "pytest (SDK 1.18.3): ok" >> "$RESULTS"
    else
        echo "pytest (SDK 1.18.3): FAILED" >> "$RESULTS"
    fi
}

pass_pg() {
    log "pytest with SDK 1.19 ($V19), every server on PostgreSQL"
    if env -u DURAHUB_SERVER_PYTHON DURAHUB_TEST_BACKEND=postgres "$V19/bin/python" -m pytest -p no:cacheprovider --durations=15 \
        tests "$@"; then
        echo "pytest (SDK 1.19, PostgreSQL): ok" >> "$RESULTS"
    else
        echo "pytest (SDK 1.19, PostgreSQL): FAILED" >> "$RESULTS"
    fi
}

pass_16() {
    log "Dapr runtime API with DaprClient 1.16 ($V16), server on $V19/bin/python"
    if DURAHUB_SERVER_PYTHON="$V19/bin/python" "$V16/bin/python" -m pytest -p no:cacheprovider --durations=15 \
        tests/protocol/test_dapr_runtime_api.py "$@"; then
        echo "pytest (DaprClient 1.16 runtime API): ok" >> "$RESULTS"
    else
        echo "pytest (DaprClient 1.16 runtime API): FAILED" >> "$RESULTS"
    fi
}

lane1() {
    [[ "${SKIP_V19:-0}" == 1 ]] || pass_19 "$@"
    [[ "${SKIP_V16:-0}" == 1 ]] || pass_16 "$@"
}

lane2() {
    [[ "${SKIP_PG:-0}" == 1 ]] || pass_pg "$@"
    [[ "${SKIP_V18:-0}" == 1 ]] || pass_18 "$@"
}

kill_tree() {  # a process and everything under it (lane 2 shares our process group, so a group signal reaches it too)
    local child
    for child in $(pgrep -P "$1" 2>/dev/null); do kill_tree "$child"; done
    kill "$1" 2>/dev/null
}

: > "$LANE1_RESULTS"; : > "$LANE2_RESULTS"
if [[ "${SERIAL:-0}" == 1 ]]; then
    RESULTS="$LANE1_RESULTS" lane1 "$@"
    RESULTS="$LANE2_RESULTS" lane2 "$@"
else
    ( RESULTS="$LANE2_RESULTS" DURAHUB_TEST_DEFAULT_PORTS=0 lane2 "$@" ) > "$LANE2_LOG" 2>&1 &
    lane2_pid=$!
    trap 'kill_tree "$lane2_pid"' EXIT
    trap 'exit 130' INT TERM
    RESULTS="$LANE1_RESULTS" lane1 "$@"
    log "waiting for lane 2 (the PostgreSQL and SDK 1.18.3 passes)"
    wait "$lane2_pid"
    trap - EXIT
    log "lane 2's output"
    cat "$LANE2_LOG"
fi
while IFS= read -r line; do
    results+=("$line")
    [[ "$line" == *": ok" ]] || status=1
done < <(cat "$LANE1_RESULTS" "$LANE2_RESULTS")
# A pass that was cut off (a killed lane) leaves no line: count them.
expected=0
for skip in "${SKIP_V19:-0}" "${SKIP_V16:-0}" "${SKIP_PG:-0}" "${SKIP_V18:-0}"; do [[ "$skip" == 1 ]] || ((expected++)); done
if (( $(cat "$LANE1_RESULTS" "$LANE2_RESULTS" | wc -l) != expected )); then
    results+=("pytest: a pass did not finish"); status=1
fi
rm -f "$LANE2_LOG" "$LANE1_RESULTS" "$LANE2_RESULTS"

log "summary"
printf '  %s\n' "${results[@]}"
exit "$status"
