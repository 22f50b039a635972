"""Route lookup by path prefix.

Starlette's router tries every route's regex in turn, and the Dapr API has dozens of routes: the
state and pub/sub routes sit behind some sixty failed matches on every call. This router indexes
routes by the static segments their paths start with (up to two: `/v1.0/state`), and tries only
the routes whose prefix the request's path has, in their original order. Routes that start with
a parameter (or have no path) are tried for every request. A request nothing matches falls back
to Starlette's own handling (404, 405, slash redirects), so behaviour is unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Match, Router
from starlette.types import Receive, Scope, Send

_DEPTH = 2
Key = tuple[str, ...]


def static_prefix(path: str) -> Key:
    """The leading path segments of a route template that hold no parameter (at most two)."""
    out: list[str] = []
    for segment in path.split("/")[1:]:
        if "{" in segment or len(out) == _DEPTH:
            break
        out.append(segment)
    return tuple(out)


def _route_path(scope: Scope) -> str:
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path


class IndexedRouter(Router):
    def __init__(self, routes: Sequence[BaseRoute], **kwargs: Any) -> None:
        super().__init__(list(routes), **kwargs)
        self._keys: list[Key] = [static_prefix(getattr(r, "path", "/{}")) for r in self.routes]
        self._known: set[Key] = set(self._keys)
        self._cache: dict[Key, list[BaseRoute]] = {}

    def candidates(self, path: str) -> list[BaseRoute]:
        segments = path.split("/", _DEPTH + 1)[1 : _DEPTH + 1]
        # Only prefixes some route has are cache keys, so the cache stays as small as the index.
        key: Key = ()
        for depth in range(1, len(segments) + 1):
            if tuple(segments[:depth]) in self._known:
                key = tuple(segments[:depth])
        found = self._cache.get(key)
        if found is None:
            found = [
                route
                for route, prefix in zip(self.routes, self._keys, strict=True)
                if key[: len(prefix)] == prefix
            ]
            self._cache[key] = found
        return found

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().app(scope, receive, send)
            return
        scope.setdefault("router", self)
        partial: BaseRoute | None = None
        partial_scope: Scope = {}
        for route in self.candidates(_route_path(scope)):
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                scope["route"] = route
                scope.update(child_scope)
                await route.handle(scope, receive, send)
                return
            if match is Match.PARTIAL and partial is None:
                partial, partial_scope = route, child_scope
        if partial is not None:
            scope["route"] = partial
            scope.update(partial_scope)
            await partial.handle(scope, receive, send)
            return
        await super().app(scope, receive, send)
