"""The admin gate in front of Tether's management API: every path under /v1.0-tether/.

One middleware rather than a check in each handler, so that no management route (app
registrations, workflow operations, subscription refreshes, whatever is added next) can be left
open by forgetting it. The Dapr API is never gated here: apps authenticate with their own
API token, which in turn grants nothing under /v1.0-tether/. See `tether.admin` for the rules.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from tether import admin, errors
from tether.runtime.callers import TOKEN_HEADER

# Without the trailing slash: a gated prefix too wide costs nothing, one too narrow opens a hole.
PREFIX = "/v1.0-tether"
_SEND = f"as 'Authorization: Bearer <token>' or in a '{admin.HEADER}' header"


class AdminGate:
    """ASGI middleware that answers 401 `ERR_ADMIN_UNAUTHORIZED` to a management request
    without the admin token, when the server has one."""

    def __init__(self, app: ASGIApp, access: admin.Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        expected = self.access.token
        if expected is not None and scope["type"] == "http" and scope["path"].startswith(PREFIX):
            refusal = self.refusal(Headers(scope=scope), expected)
            if refusal is not None:
                response = JSONResponse(
                    refusal.to_json(),
                    status_code=refusal.http_status,
                    headers={"WWW-Authenticate": 'Bearer realm="tether-admin"'},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, headers: Headers, expected: str) -> errors.AdminUnauthorized | None:
        given = admin.presented(headers)
        if given is not None and admin.matches(given, expected):
            return None
        if given is not None:
            return errors.AdminUnauthorized(f"invalid admin token. {self.where()}")
        if TOKEN_HEADER in headers:
            return errors.AdminUnauthorized(
                f"an App ID's API token ({TOKEN_HEADER}) does not grant access to the "
                f"management API: send the admin token {_SEND}. {self.where()}"
            )
        return errors.AdminUnauthorized(
            f"the management API requires the admin token, {_SEND}. {self.where()}"
        )

    def where(self) -> str:
        """Where the right token comes from. Never the file's path: the caller may be anyone."""
        if self.access.file is not None:
            return (
                f"This server generated one: the file '{admin.FILE_NAME}' in its data directory, "
                "which the tether CLI and tether run on the same machine read (--data-dir); "
                f"elsewhere, set {admin.ENV} to its contents."
            )
        return (
            f"It is the token the server was started with (--admin-token or {admin.ENV}); "
            f"the tether CLI and tether run send it from --admin-token or {admin.ENV}."
        )
