"""Who is calling: every request is attributed to an App ID, derived from its API token."""

from __future__ import annotations

from collections.abc import Mapping

import grpc

from tether import errors

TOKEN_HEADER = "dapr-api-token"


class Callers:
    """Maps API tokens to App IDs.

    With no tokens registered, every caller acts as `default_app_id`. Once tokens exist, a
    presented token must be one of them; a caller without a token falls back to the default App
    ID only when `tokenless_default` allows it (the embedded dev server on loopback).
    """

    def __init__(
        self,
        default_app_id: str,
        tokens: Mapping[str, str] | None = None,
        tokenless_default: bool = True,
    ) -> None:
        self.default_app_id = default_app_id
        self._tokens = dict(tokens or {})
        self._tokenless_default = tokenless_default

    def register(self, token: str, app_id: str) -> None:
        self._tokens[token] = app_id

    def unregister(self, token: str) -> None:
        self._tokens.pop(token, None)

    def app_for_token(self, token: str | None) -> str:
        if token:
            app_id = self._tokens.get(token)
            if app_id is not None:
                return app_id
            if not self._tokens and self._tokenless_default:
                return self.default_app_id
            raise errors.Unauthorized("invalid api token: check DAPR_API_TOKEN for this app")
        if self._tokenless_default or not self._tokens:
            return self.default_app_id
        raise errors.Unauthorized("missing api token: set DAPR_API_TOKEN to the App ID's token")

    def for_grpc(self, context: grpc.aio.ServicerContext) -> str:
        token = None
        for key, value in context.invocation_metadata() or ():
            if key == TOKEN_HEADER:
                token = value if isinstance(value, str) else value.decode()
                break
        return self.app_for_token(token)
