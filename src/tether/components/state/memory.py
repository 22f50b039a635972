"""`state.in-memory`: a dict in this process. Gone on restart; for tests and `tether dev`.

Operations never await while they touch the dict, so each one is atomic on the event loop.
Expired items are dropped when touched and by a sweep every `_SWEEP_EVERY` writes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass

from tether.components.state import query as q
from tether.components.state.base import (
    DeleteOp,
    EtagClock,
    Feature,
    Op,
    QueryResult,
    StateItem,
    StateStore,
    check,
    component_ttl,
    expiry,
    json_text,
)
from tether.resources.component import ComponentSpec

_SWEEP_EVERY = 1000


@dataclass(slots=True)
class _Entry:
    value: bytes
    etag: int
    expires_at: float | None
    #: The decoded JSON value, when it is JSON (for queries).
    doc: object = None
    is_json: bool = False

    def live(self, now: float) -> bool:
        return self.expires_at is None or self.expires_at > now


class MemoryStateStore(StateStore):
    def __init__(self, spec: ComponentSpec | None = None) -> None:
        super().__init__(component_ttl(spec) if spec is not None else None)
        self._items: dict[str, _Entry] = {}
        self._clock = EtagClock()
        self._writes = 0

    def features(self) -> frozenset[Feature]:
        return frozenset({Feature.ETAG, Feature.TRANSACTIONAL, Feature.TTL, Feature.QUERY_API})

    async def close(self) -> None:
        self._items.clear()

    def _live(self, key: str, now: float) -> _Entry | None:
        entry = self._items.get(key)
        if entry is not None and not entry.live(now):
            del self._items[key]
            return None
        return entry

    async def get(self, key: str) -> StateItem | None:
        entry = self._live(key, time.time())
        return None if entry is None else _item(key, entry)

    async def bulk_get(self, keys: Sequence[str]) -> list[StateItem | None]:
        now = time.time()
        out: list[StateItem | None] = []
        for key in keys:
            entry = self._live(key, now)
            out.append(None if entry is None else _item(key, entry))
        return out

    async def _write(self, ops: Sequence[Op]) -> list[str | None]:
        now = time.time()
        # Check every op against the store as the earlier ops would leave it, then apply.
        overlay: dict[str, str | None] = {}
        for op in ops:
            if op.key in overlay:
                current = overlay[op.key]
            else:
                entry = self._live(op.key, now)
                current = None if entry is None else str(entry.etag)
            check(op, current)
            # A value written earlier in this transaction has an etag no caller can know yet.
            overlay[op.key] = None if isinstance(op, DeleteOp) else "pending"
        etags: list[str | None] = []
        for op in ops:
            if isinstance(op, DeleteOp):
                self._items.pop(op.key, None)
                etags.append(None)
                continue
            old = self._items.get(op.key)
            etag = self._clock.next(old.etag if old is not None else 0)
            entry = _Entry(op.value, etag, expiry(op.ttl_seconds, now))
            text = json_text(op.value)
            if text is not None:
                entry.doc, entry.is_json = json.loads(text), True
            self._items[op.key] = entry
            etags.append(str(etag))
        self._writes += 1
        if self._writes % _SWEEP_EVERY == 0:
            self._sweep(now)
        return etags

    def _sweep(self, now: float) -> None:
        for key in [k for k, e in self._items.items() if not e.live(now)]:
            del self._items[key]

    async def query(self, query: q.Query, key_prefix: str = "") -> QueryResult:
        offset = query.offset
        now = time.time()
        selected = [
            (key, entry.doc)
            for key, entry in self._items.items()
            if key.startswith(key_prefix)
            and entry.is_json
            and entry.live(now)
            and (query.filter is None or q.matches(query.filter, entry.doc))
        ]
        keys = q.sort_items(selected, query.sort)[offset:]
        more = bool(query.limit) and len(keys) > query.limit
        if query.limit:
            keys = keys[: query.limit]
        items = [_item(key, self._items[key]) for key in keys]
        return QueryResult(items, query.next_token(len(items), more))


def _item(key: str, entry: _Entry) -> StateItem:
    return StateItem(key, entry.value, str(entry.etag), entry.expires_at)
