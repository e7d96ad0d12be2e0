"""A small HTTP client for a running engine's `/durahub/v1` API (the standard library's urllib: no dependency
beyond what the engine needs).

Every failure becomes a `CliError` carrying the one line to print and the exit code, so commands never show a
traceback: an unreachable engine, a refused API token, an unknown instance (exit 3), a request the instance's
state refuses.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

TOKEN_HEADER = "dapr-api-token"
API = "/durahub/v1"
DEFAULT_ADDRESS = "http://127.0.0.1:3500"
PAGE = 1000  # the API's largest page

# Exit codes (the same for every command).
EXIT_ERROR = 1
EXIT_NOT_FOUND = 3
EXIT_WORKFLOW_FAILED = 4
EXIT_TIMED_OUT = 124


class CliError(Exception):
    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def resolve_address(explicit: str | None, env: dict[str, str] | None = None) -> str:
    """--address, else DURAHUB_ADDRESS, else the engine of `durahub run` (DAPR_HTTP_PORT), else the default."""
    env = dict(os.environ) if env is None else env
    address = explicit or env.get("DURAHUB_ADDRESS")
    if not address and env.get("DAPR_HTTP_PORT"):
        address = f"http://127.0.0.1:{env['DAPR_HTTP_PORT']}"
    address = (address or DEFAULT_ADDRESS).rstrip("/")
    return address if "://" in address else f"http://{address}"


@dataclass
class Filter:
    """Which instances a listing or a bulk operation covers (the API's list and filter parameters)."""

    statuses: list[str] = field(default_factory=list)
    app_id: str | None = None
    workflow_name: str | None = None
    created_from: str | None = None
    created_to: str | None = None
    instance_id_prefix: str | None = None
    parent_instance_id: str | None = None

    def body(self) -> dict[str, Any]:
        """As the JSON body of `POST /purge` and `POST /terminate`."""
        return {k: v for k, v in vars(self).items() if v not in (None, [])}

    def params(self) -> dict[str, Any]:
        """As the query of `GET /instances` (`status` repeated)."""
        params = self.body()
        if "statuses" in params:
            params["status"] = params.pop("statuses")
        if "app_id" in params:
            params["appID"] = params.pop("app_id")
        return params


class EngineClient:
    def __init__(self, address: str, token: str | None = None, app_id: str | None = None,
                 timeout: float = 30.0) -> None:
        self.address = address
        self.token = token
        self.app_id = app_id
        self.timeout = timeout

    # -- transport ------------------------------------------------------------------------------------------

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
                timeout: float | None = None, app: str | None = None) -> Any:
        """One call; the decoded JSON answer (None for an empty one). `app` (default: --app-id) is the app whose
        instance a call names; without one the engine's endpoint means its own app, and listings every app."""
        raw = self.fetch(method, path, params=params, body=body, timeout=timeout, app=app)
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            raise CliError(f"{self.address} answered {method} {path} with something that is not JSON; is it a"
                           " durahub engine?") from None

    def fetch(self, method: str, path: str, *, params: dict[str, Any] | None = None, body: Any = None,
              timeout: float | None = None, app: str | None = None, accept: str = "application/json") -> bytes:
        """One call, as `request`; the answer's body as it came."""
        query = dict(params or {})
        if (app or self.app_id) and "appID" not in query:
            query["appID"] = app or self.app_id
        url = self.address + path + ("?" + urllib.parse.urlencode(query, doseq=True) if query else "")
        headers = {"Accept": accept}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if self.token:
            headers[TOKEN_HEADER] = self.token
        req = urllib.request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout) as resp:
                raw: bytes = resp.read()
        except urllib.error.HTTPError as exc:
            raise self._refused(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            if isinstance(reason, socket.timeout | TimeoutError):
                raise CliError(f"the durahub engine at {self.address} did not answer in time") from None
            raise CliError(f"cannot reach the durahub engine at {self.address} ({reason}); start one with"
                           " `durahub serve` or point to it with --address / DURAHUB_ADDRESS") from None
        return raw

    def _refused(self, exc: urllib.error.HTTPError) -> CliError:
        message = _error_message(exc.read())
        if exc.code in (401, 403):
            return CliError(f"the engine at {self.address} refused the API token ({exc.code}): {message};"
                            " pass --api-token or set DAPR_API_TOKEN")
        if exc.code == 404:
            return CliError(message, EXIT_NOT_FOUND)
        return CliError(f"{message} (HTTP {exc.code})" if exc.code >= 500 else message)

    # -- instances ------------------------------------------------------------------------------------------

    def instance(self, instance_id: str) -> dict[str, Any]:
        """The instance with its decoded history."""
        result: dict[str, Any] = self.request("GET", f"{API}/instances/{_segment(instance_id)}")
        return result

    def summary(self, instance_id: str, app: str | None = None) -> dict[str, Any]:
        """What the instance waits on now (the engine's summary view)."""
        result: dict[str, Any] = self.request("GET", f"{API}/instances/{_segment(instance_id)}/summary", app=app)
        return result

    def page(self, flt: Filter, limit: int, cursor: str | None = None) -> dict[str, Any]:
        params = flt.params() | {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        result: dict[str, Any] = self.request("GET", f"{API}/instances", params=params)
        return result

    def instances(self, flt: Filter, most: int | None = None) -> Iterator[dict[str, Any]]:
        """Every instance the filter matches, oldest first, following the cursors (at most `most`)."""
        cursor = None
        seen = 0
        while most is None or seen < most:
            page = self.page(flt, PAGE if most is None else min(PAGE, most - seen), cursor)
            for instance in page["instances"]:
                seen += 1
                yield instance
            cursor = page.get("next_cursor")
            if not cursor:
                return

    def wait(self, instance_id: str, statuses: list[str], timeout: float) -> dict[str, Any]:
        """One long-poll (`timeout` at most the API's 300 s): {"instance": ..., "timed_out": bool}."""
        params: dict[str, Any] = {"timeout": timeout}
        if statuses:
            params["status"] = statuses
        result: dict[str, Any] = self.request("GET", f"{API}/instances/{_segment(instance_id)}/wait",
                                              params=params, timeout=timeout + self.timeout)
        return result

    # -- views (the dashboard's) ----------------------------------------------------------------------------

    def tree(self, instance_id: str, depth: int) -> dict[str, Any]:
        """The instance and its children, `depth` levels down."""
        result: dict[str, Any] = self.request("GET", f"{API}/instances/{_segment(instance_id)}/tree",
                                              params={"depth": depth})
        return result

    def graph(self, instance_id: str, fmt: str) -> Any:
        """The instance's derived graph: decoded JSON, or the text of a drawing (mermaid, dot, svg)."""
        return self._view(f"{API}/instances/{_segment(instance_id)}/graph", {"format": fmt})

    def workflow_map(self, workflow_name: str, last: int, fmt: str) -> Any:
        """The map of the workflow's `last` newest runs (of --app-id's app, default every app's), as `graph`."""
        return self._view(f"{API}/workflows/{_segment(workflow_name)}/map", {"format": fmt, "last": last})

    def _view(self, path: str, params: dict[str, Any]) -> Any:
        if params["format"] == "json":
            return self.request("GET", path, params=params)
        return self.fetch("GET", path, params=params, accept="*/*").decode()

    def metadata(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/v1.0/metadata")
        return result

    # -- operations -----------------------------------------------------------------------------------------

    def start(self, name: str, instance_id: str | None, input: str | None, start_at: str | None) -> str:
        body = {"workflow_name": name, "instance_id": instance_id, "input": input, "start_at": start_at}
        answer = self.request("POST", f"{API}/instances", body={k: v for k, v in body.items() if v is not None})
        return str(answer["instance_id"])

    def act(self, instance_id: str, action: str, body: dict[str, Any] | None = None, app: str | None = None) -> Any:
        """suspend, resume, terminate, raise or purge one instance (of `app`, default --app-id)."""
        return self.request("POST", f"{API}/instances/{_segment(instance_id)}/{action}", body=body or {}, app=app)

    def rerun(self, instance_id: str, event_id: int, new_instance_id: str | None, input: str | None) -> str:
        body: dict[str, Any] = {"event_id": event_id}
        if new_instance_id is not None:
            body["new_instance_id"] = new_instance_id
        if input is not None:
            body["input"] = input
            body["overwrite_input"] = True
        answer = self.request("POST", f"{API}/instances/{_segment(instance_id)}/rerun", body=body)
        return str(answer["new_instance_id"])

    def purge_matching(self, flt: Filter) -> int:
        body = ({"app_id": self.app_id} if self.app_id else {}) | flt.body()
        return int(self.request("POST", f"{API}/purge", body=body)["count"])


def _segment(instance_id: str) -> str:
    return urllib.parse.quote(instance_id, safe="")


def _error_message(raw: bytes) -> str:
    """The message of an error answer: durahub's {"detail"}, Dapr's {"message"}, or validation errors."""
    try:
        body = json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace").strip() or "no details"
    if isinstance(body, dict):
        detail = body.get("detail", body.get("message"))
        if isinstance(detail, list):  # FastAPI's validation errors
            return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', [])[1:])}: {d.get('msg')}" for d in detail)
        if detail is not None:
            return str(detail)
    return json.dumps(body)
