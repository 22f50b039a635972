"""The state store contract.

A state store maps opaque string keys to opaque byte values, each with an etag. The runtime
prefixes keys (`<appid>||<key>`) before they arrive; a store never looks inside them.

Semantics every backend keeps:

- **ETags.** Every stored item has an etag, returned by `get` and by `set`; any successful write
  changes it, and an etag is never reused for a key, not even after the key was deleted and
  written again. Etags are decimal integers; any other string is `ETagInvalid`.
- **Concurrency.** A write *with* an etag succeeds only if the item exists and still has that
  etag (else `ETagMismatch`), whatever the concurrency mode. A write *without* an etag is
  last-write-wins, except a first-write `set`, which succeeds only if the key is absent. A
  delete without an etag always succeeds, also for a missing key.
- **TTL.** An item written with a TTL expires that many seconds later; from then on it is
  invisible (reads miss it, etag writes mismatch, first-writes find the key free) until a
  backend's cleanup removes it. Each `set` replaces the previous TTL: without one, the item
  lives until deleted. `ttl_seconds=None` means the component's default (metadata
  `ttlInSeconds`, none if unset); `-1` means no expiry, overriding that default.
- **Transactions.** `transact` applies its operations in order, all or nothing: the first
  failing etag check raises and leaves the store as it was. Checks see earlier operations of
  the same transaction (delete then first-write of one key succeeds).
- **Query.** Optional (`Feature.QUERY_API`): filters, sorts and pages the items whose value is
  JSON; stores without it raise `QueryUnsupported`.
- **Failures.** A backend that fails or cannot be reached raises `StateStoreFailed`; the write may
  or may not have happened.
"""

from __future__ import annotations

import json
import math
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from tether import errors
from tether.components.state.query import Query
from tether.resources.component import ComponentSpec

#: Request and component metadata key: seconds until an item expires.
TTL_IN_SECONDS = "ttlInSeconds"
#: Component metadata key the runtime sets: the server's data directory (embedded stores use it).
DATA_DIR = "tetherDataDir"
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


class Feature(StrEnum):
    """Capabilities a store reports (Dapr's state store feature names)."""

    ETAG = "ETAG"
    TRANSACTIONAL = "TRANSACTIONAL"
    TTL = "TTL"
    QUERY_API = "QUERY_API"


class Concurrency(StrEnum):
    FIRST_WRITE = "first-write"
    LAST_WRITE = "last-write"


@dataclass(frozen=True, slots=True)
class StateItem:
    key: str
    value: bytes
    etag: str
    #: Unix time (seconds) the item expires at; None when it does not.
    expires_at: float | None = None


@dataclass(frozen=True, slots=True)
class SetOp:
    key: str
    value: bytes
    etag: str | None = None
    concurrency: Concurrency = Concurrency.LAST_WRITE
    #: See the module docstring; after validation (`_prepare`) None means "never expires".
    ttl_seconds: int | None = None


@dataclass(frozen=True, slots=True)
class DeleteOp:
    key: str
    etag: str | None = None
    concurrency: Concurrency = Concurrency.LAST_WRITE


Op = SetOp | DeleteOp


@dataclass(frozen=True, slots=True)
class QueryResult:
    items: list[StateItem]
    #: Pass as `page.token` to get the next page; None when there is none.
    token: str | None = None


class StateStore(ABC):
    """A state store as one component instance sees it."""

    def __init__(self, default_ttl: int | None = None) -> None:
        #: From component metadata `ttlInSeconds`; applied when a `set` names no TTL.
        self.default_ttl = default_ttl

    @abstractmethod
    def features(self) -> frozenset[Feature]:
        """Capabilities; the set does not change after `init`."""

    async def init(self) -> None:  # noqa: B027 - optional hook
        """Connect, create tables, start cleanup. Raises `StateComponentInvalid` for bad metadata
        and `StateStoreFailed` when the backend can't be reached."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and stop background work. Idempotent."""

    @abstractmethod
    async def get(self, key: str) -> StateItem | None:
        """The item at `key`, or None when it is absent or expired."""

    async def bulk_get(self, keys: Sequence[str]) -> list[StateItem | None]:
        """One result per key, in order (None for absent or expired keys)."""
        return [await self.get(key) for key in keys]

    async def set(
        self,
        key: str,
        value: bytes,
        etag: str | None = None,
        concurrency: Concurrency | str = Concurrency.LAST_WRITE,
        ttl_seconds: int | None = None,
    ) -> str:
        """Store `value` at `key` and return its new etag.

        Raises `ETagMismatch` when the etag check fails (see the module docstring), `ETagInvalid`
        for an etag this store never issues, `BadRequest` for an empty key or a TTL below -1.
        """
        op = SetOp(key, value, etag, concurrency_of(concurrency), ttl_seconds)
        etags = await self._write([self._prepare(op)])
        result = etags[0]
        assert result is not None
        return result

    async def delete(
        self,
        key: str,
        etag: str | None = None,
        concurrency: Concurrency | str = Concurrency.LAST_WRITE,
    ) -> None:
        """Remove `key`. Without an etag a missing key is a no-op; with one, a missing key or a
        different etag raises `DeleteETagMismatch` (`DeleteETagInvalid` for a malformed one)."""
        await self._write([self._prepare(DeleteOp(key, etag, concurrency_of(concurrency)))])

    async def transact(self, ops: Sequence[Op]) -> None:
        """Apply `ops` in order, all or nothing; raises what the failing operation would."""
        if ops:
            await self._write([self._prepare(op) for op in ops])

    async def query(self, query: Query, key_prefix: str = "") -> QueryResult:
        """Items under `key_prefix` whose JSON value passes `query.filter`, sorted and paged.

        Only items whose value is JSON take part. Without sort keys, items come in key order.
        Raises `QueryUnsupported` when the store lacks `Feature.QUERY_API`, and `QueryInvalid`
        for a bad page token.
        """
        raise errors.QueryUnsupported(f"state store {type(self).__name__} does not support query")

    # --- for backends -----------------------------------------------------------------------

    @abstractmethod
    async def _write(self, ops: Sequence[Op]) -> list[str | None]:
        """Apply validated `ops` atomically and in order; the new etag of each `SetOp` (None for
        deletes). Raise `mismatch(op)` for the first failing check, changing nothing.

        Ops arrive prepared: etags are canonical decimal strings or None, `ttl_seconds` is the
        effective TTL (None: no expiry).
        """

    def _prepare(self, op: Op) -> Op:
        if not op.key:
            raise errors.BadRequest("a state key must not be empty")
        etag = None if op.etag in (None, "") else canonical_etag(op)
        concurrency = concurrency_of(op.concurrency)
        if isinstance(op, DeleteOp):
            return replace(op, etag=etag, concurrency=concurrency)
        ttl = self.default_ttl if op.ttl_seconds is None else op.ttl_seconds
        return replace(op, etag=etag, concurrency=concurrency, ttl_seconds=effective_ttl(ttl))


def concurrency_of(value: Concurrency | str) -> Concurrency:
    """A concurrency mode from a request; empty means last-write (Dapr's default)."""
    try:
        return Concurrency(value or Concurrency.LAST_WRITE)
    except ValueError:
        raise errors.BadRequest(
            f"concurrency must be first-write or last-write, got {value!r}"
        ) from None


def canonical_etag(op: Op) -> str:
    """The etag of `op` as this family of stores writes it, or `ETagInvalid`."""
    etag = op.etag or ""
    text = etag.strip().strip('"')  # HTTP If-Match may arrive quoted
    if not text.isascii() or not text.isdigit() or len(text) > 19 or int(text) >= 2**63:
        cls = errors.DeleteETagInvalid if isinstance(op, DeleteOp) else errors.ETagInvalid
        raise cls(f"invalid etag {etag!r} for key '{op.key}': this store's etags are integers")
    return str(int(text))


def check(op: Op, current: str | None) -> None:
    """Raise `mismatch(op)` unless `op` may apply to an item whose etag is `current` (None: the
    key is absent or expired)."""
    if op.etag is not None:
        if current != op.etag:
            raise mismatch(op)
    elif (
        isinstance(op, SetOp) and op.concurrency is Concurrency.FIRST_WRITE and current is not None
    ):
        raise mismatch(op)


def mismatch(op: Op) -> errors.ETagMismatch:
    """The error for `op` failing its etag or first-write check."""
    if isinstance(op, DeleteOp):
        return errors.DeleteETagMismatch(f"possible etag mismatch deleting key '{op.key}'")
    if op.etag is None:
        return errors.ETagMismatch(f"first-write: key '{op.key}' already exists")
    return errors.ETagMismatch(f"possible etag mismatch saving key '{op.key}'")


def effective_ttl(ttl: int | None) -> int | None:
    """Seconds to live, or None for no expiry; `BadRequest` below -1."""
    if ttl is None:
        return None
    if ttl < -1:
        raise errors.BadRequest(f"ttlInSeconds must be -1 or more, got {ttl}")
    return ttl if ttl > 0 else None


def ttl_from_metadata(metadata: Mapping[str, str]) -> int | None:
    """`ttlInSeconds` from request or component metadata (None when absent); `BadRequest` if bad."""
    raw = next((v for k, v in metadata.items() if k.lower() == TTL_IN_SECONDS.lower()), None)
    if raw is None or raw == "":
        return None
    try:
        ttl = int(raw)
    except ValueError:
        raise errors.BadRequest(f"ttlInSeconds must be an integer, got {raw!r}") from None
    effective_ttl(ttl)
    return ttl


def component_ttl(spec: ComponentSpec) -> int | None:
    """The component's default TTL, as `StateComponentInvalid` when malformed."""
    try:
        return ttl_from_metadata(spec.metadata)
    except errors.BadRequest as exc:
        raise errors.StateComponentInvalid(f"component '{spec.name}': {exc.message}") from exc


def expiry(ttl_seconds: int | None, now: float | None = None) -> float | None:
    """Unix time an item written now with `ttl_seconds` (effective) expires at."""
    if ttl_seconds is None:
        return None
    return (time.time() if now is None else now) + ttl_seconds


def json_text(value: bytes) -> str | None:
    """`value` decoded when it is a JSON document that SQL JSON types accept too, else None.

    Python's parser is laxer than PostgreSQL's: NaN/Infinity, `\\u0000` and unpaired surrogate
    escapes are refused here so that such values are stored as plain bytes instead of failing.
    """
    try:
        text = value.decode("utf-8")
        doc = json.loads(text, parse_constant=_reject_constant)
        if _SURROGATE.search(text):
            json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except (UnicodeError, ValueError, RecursionError):
        return None
    return None if "\\u0000" in text else text


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


class EtagClock:
    """Issues etags for one process's stores: increasing, so never reused for a key.

    Microseconds since the epoch, bumped past the last one issued, so a key deleted and written
    again (even after a restart) gets an etag it never had before.
    """

    def __init__(self) -> None:
        self._last = 0

    def next(self, after: int = 0) -> int:
        now = math.floor(time.time() * 1_000_000)
        self._last = max(now, self._last + 1, after + 1)
        return self._last
