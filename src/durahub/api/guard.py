"""Guards for what a browser can be made to send: durahub's API and dashboard are reachable from any page the
user has open, because the browser is on the same machine.

- A page on another site can POST "simple" requests (forms, `text/plain`) to 127.0.0.1 without asking: changes
  under `/durahub/v1` take JSON bodies only and refuse requests whose `Origin` is not the server itself.
- DNS rebinding (a site's name re-pointed to 127.0.0.1) makes such a page same-origin: on a server bound to a
  loopback address, `/durahub/` and `/dashboard` answer only to loopback host names.

Dapr's own routes are left as daprd has them (raw bodies), so existing clients keep working.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

GUARDED = ("/durahub/", "/dashboard")
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}
SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


def _hostname(host: str) -> str:
    """`host[:port]` → host, without brackets around an IPv6 address."""
    return (urlsplit(f"//{host}").hostname or "").lower()


def refusal(scope: Scope, bound_host: str) -> tuple[int, str] | None:
    """Why a request must be refused (status, message), or None to let it through."""
    path: str = scope["path"]
    if not path.startswith(GUARDED):
        return None
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
    host = headers.get("host", "")
    if bound_host.lower() in LOOPBACK_HOSTS:
        name = _hostname(host)
        if name not in LOOPBACK_NAMES and not name.startswith("127."):
            return 421, f"this server answers to loopback host names only, not {host!r}"
    if scope["method"] in SAFE_METHODS:
        return None
    origin = headers.get("origin")
    if origin is not None and urlsplit(origin).netloc.lower() != host.lower():
        return 403, f"cross-origin request refused (Origin {origin!r}, Host {host!r})"
    if headers.get("sec-fetch-site") == "cross-site":
        return 403, "cross-site request refused"
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
    if (media or has_body) and media != "application/json":
        return 415, "request bodies must be JSON (Content-Type: application/json)"
    return None


class BrowserGuard:
    def __init__(self, app: ASGIApp, bound_host: str) -> None:
        self.app = app
        self.bound_host = bound_host

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refused = refusal(scope, self.bound_host)
            if refused is not None:
                status, message = refused
                await JSONResponse({"detail": message}, status_code=status)(scope, receive, send)
                return
        await self.app(scope, receive, send)
