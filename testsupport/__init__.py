"""The shared test harness of durahub's test suite, its example tests and bench/faults.py.

Nothing here imports durahub at import time: the suite also runs in a virtualenv with only the legacy (1.18)
SDK, where durahub is not installed and the server is started with another interpreter
(DURAHUB_SERVER_PYTHON). The repository root is on sys.path through pytest's ``pythonpath`` option
(pyproject.toml) and, for ``python -m bench...``, because it is the working directory.

- ``process``: REPO_ROOT, free_port, wait_until, ManagedProcess (a subprocess with its own log file);
- ``databases``: the store backend under test (DURAHUB_TEST_BACKEND), throwaway PostgreSQL databases, an
  old-schema SQLite file;
- ``server``: DurahubServer, one ``python -m durahub serve`` subprocess;
- ``sdk``: WorkflowRuntime/DaprWorkflowClient helpers (make_runtime, wait_for_status, assert_completed, ...);
- ``plugin``: the pytest plugin (report header, the log of every live process printed when a test fails);
- ``faultlib``/``fault_worker``: the fault-injection workload of tests/reliability and bench/faults.py.
"""
