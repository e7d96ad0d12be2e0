"""The web dashboard: static files (one HTML shell, CSS, plain ES modules; no build step, nothing loaded from
another origin) served under `/dashboard/`. The page is a client of the `/durahub/v1` API like the CLI; every
path under `/dashboard/` that is not a static file gets the shell, which routes in the browser
(`/dashboard/instances/{id}?appID=`, `/dashboard/workflows/{name}`)."""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(__file__).parent / "static"

# Scripts, styles, images and connections from this origin only; no inline script or style, no frames.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none';"
                               " form-action 'self'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class _SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []),
                                      *((k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items())]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def dashboard_app(token_required: bool = False) -> ASGIApp:
    """The dashboard's files; `token_required` tells the page to ask for the API token before calling the API
    (rather than learning it from a refused call)."""
    shell = (STATIC / "index.html").read_text(encoding="utf-8").replace(
        "__AUTH__", "token" if token_required else "none")

    async def page(request: Request) -> Response:
        return HTMLResponse(shell)

    app = Starlette(routes=[
        Mount("/static", app=StaticFiles(directory=STATIC)),
        Route("/{path:path}", page, methods=["GET", "HEAD"]),
    ])
    return _SecurityHeaders(app)
