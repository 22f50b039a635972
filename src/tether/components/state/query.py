"""The Dapr state query language: parsed once here, then compiled by each backend.

```json
{"filter": {"OR": [{"EQ": {"person.org": "Dev Ops"}},
                   {"AND": [{"EQ": {"person.org": "Finance"}}, {"IN": {"state": ["CA", "WA"]}}]}]},
 "sort": [{"key": "state", "order": "DESC"}, {"key": "person.id"}],
 "page": {"limit": 3, "token": "3"}}
```

Keys are dot paths into the JSON value. Operators: EQ, NEQ, GT, GTE, LT, LTE, IN, AND, OR.
Comparisons hold only between values of the same JSON type (numbers compare as numbers,
strings as strings); a missing field matches nothing but NEQ. Sorting puts items missing the
sort field last. Page tokens are opaque to callers (an offset).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from tether import errors

CompareOp = Literal["EQ", "NEQ", "GT", "GTE", "LT", "LTE"]
_COMPARE: tuple[CompareOp, ...] = ("EQ", "NEQ", "GT", "GTE", "LT", "LTE")
_MISSING = object()


@dataclass(frozen=True, slots=True)
class Compare:
    op: CompareOp
    path: tuple[str, ...]
    value: Any


@dataclass(frozen=True, slots=True)
class In:
    path: tuple[str, ...]
    values: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class And:
    filters: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Or:
    filters: tuple[Filter, ...]


Filter = Compare | In | And | Or


@dataclass(frozen=True, slots=True)
class SortKey:
    path: tuple[str, ...]
    descending: bool = False


@dataclass(frozen=True, slots=True)
class Query:
    filter: Filter | None = None
    sort: tuple[SortKey, ...] = ()
    #: 0: no limit.
    limit: int = 0
    token: str | None = None

    @property
    def offset(self) -> int:
        """Where the page starts, from the token; `QueryInvalid` for a token we never issued."""
        if not self.token:
            return 0
        if not self.token.isascii() or not self.token.isdigit():
            raise errors.QueryInvalid(f"invalid page token {self.token!r}")
        return int(self.token)

    def next_token(self, returned: int, more: bool) -> str | None:
        return str(self.offset + returned) if more else None


def parse_query(doc: Mapping[str, Any]) -> Query:
    """Parse a query document (the decoded JSON body); raises `QueryInvalid`."""
    if not isinstance(doc, Mapping):
        raise errors.QueryInvalid("a query must be a JSON object")
    unknown = set(doc) - {"filter", "sort", "page"}
    if unknown:
        raise errors.QueryInvalid(f"unknown query fields: {', '.join(sorted(unknown))}")
    raw_filter = doc.get("filter")
    parsed = _filter(raw_filter, "filter") if raw_filter else None
    sort = tuple(_sort(item, i) for i, item in enumerate(_list(doc.get("sort") or [], "sort")))
    page = doc.get("page") or {}
    if not isinstance(page, Mapping):
        raise errors.QueryInvalid("page must be an object")
    limit = page.get("limit", 0)
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
        raise errors.QueryInvalid(f"page.limit must be a non-negative integer, got {limit!r}")
    token = page.get("token")
    if token is not None and not isinstance(token, str):
        raise errors.QueryInvalid("page.token must be a string")
    query = Query(parsed, sort, limit, token or None)
    query.offset  # noqa: B018 - validates the token now rather than at execution
    return query


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise errors.QueryInvalid(f"{where} must be a list")
    return value


def path_of(key: object, where: str) -> tuple[str, ...]:
    if not isinstance(key, str) or not key:
        raise errors.QueryInvalid(f"{where}: a key must be a non-empty string")
    parts = tuple(key.split("."))
    if any(not part or '"' in part for part in parts):
        raise errors.QueryInvalid(f"{where}: invalid key {key!r}")
    return parts


def _filter(raw: object, where: str) -> Filter:
    if not isinstance(raw, Mapping) or len(raw) != 1:
        raise errors.QueryInvalid(f"{where}: a filter is an object with exactly one operator")
    ((op, arg),) = raw.items()
    here = f"{where}.{op}"
    if op in ("AND", "OR"):
        items = _list(arg, here)
        if len(items) < 2:
            raise errors.QueryInvalid(f"{here} needs at least two filters")
        subs = tuple(_filter(item, f"{here}[{i}]") for i, item in enumerate(items))
        return And(subs) if op == "AND" else Or(subs)
    if op not in (*_COMPARE, "IN"):
        raise errors.QueryInvalid(f"{where}: unsupported operator {op!r}")
    if not isinstance(arg, Mapping) or len(arg) != 1:
        raise errors.QueryInvalid(f"{here} must be an object with one key and its value")
    ((key, value),) = arg.items()
    path = path_of(key, here)
    if op == "IN":
        values = _list(value, f"{here}.{key}")
        if not values:
            raise errors.QueryInvalid(f"{here}.{key}: IN needs at least one value")
        return In(path, tuple(values))
    if isinstance(value, dict | list) and op != "EQ" and op != "NEQ":
        raise errors.QueryInvalid(f"{here}.{key}: {op} compares numbers or strings")
    return Compare(op, path, value)


def _sort(raw: object, index: int) -> SortKey:
    if not isinstance(raw, Mapping):
        raise errors.QueryInvalid(f"sort[{index}] must be an object")
    order = str(raw.get("order") or "ASC").upper()
    if order not in ("ASC", "DESC"):
        raise errors.QueryInvalid(f"sort[{index}].order must be ASC or DESC, got {order!r}")
    return SortKey(path_of(raw.get("key"), f"sort[{index}]"), order == "DESC")


# --- evaluation in Python (the in-memory store) ------------------------------------------------


def lookup(doc: object, path: tuple[str, ...]) -> object:
    """The value at `path` in a decoded JSON document, or `MISSING`."""
    for part in path:
        if not isinstance(doc, dict) or part not in doc:
            return _MISSING
        doc = doc[part]
    return doc


def json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def matches(flt: Filter, doc: object) -> bool:
    if isinstance(flt, And):
        return all(matches(f, doc) for f in flt.filters)
    if isinstance(flt, Or):
        return any(matches(f, doc) for f in flt.filters)
    found = lookup(doc, flt.path)
    if isinstance(flt, In):
        return found is not _MISSING and any(_equal(found, v) for v in flt.values)
    if flt.op == "EQ":
        return found is not _MISSING and _equal(found, flt.value)
    if flt.op == "NEQ":
        return found is _MISSING or not _equal(found, flt.value)
    if found is _MISSING or json_type(found) != json_type(flt.value):
        return False
    if json_type(found) not in ("number", "string"):
        return False
    left: Any = found
    right: Any = flt.value
    if flt.op == "GT":
        return bool(left > right)
    if flt.op == "GTE":
        return bool(left >= right)
    if flt.op == "LT":
        return bool(left < right)
    return bool(left <= right)


def _equal(left: object, right: object) -> bool:
    return json_type(left) == json_type(right) and _canonical(left) == _canonical(right)


def canonical_json(value: object) -> str:
    """Compact JSON text of a filter value, as SQL backends compare it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _canonical(value: object) -> object:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return value


def sort_items(items: list[tuple[str, object]], keys: tuple[SortKey, ...]) -> list[str]:
    """Keys of `(key, decoded doc)` pairs ordered by `keys`, then by key; missing fields last."""
    ordered = sorted(items, key=lambda item: item[0])
    for sort_key in reversed(keys):
        present = [i for i in ordered if lookup(i[1], sort_key.path) is not _MISSING]
        absent = [i for i in ordered if lookup(i[1], sort_key.path) is _MISSING]
        present.sort(
            key=lambda i: _sortable(lookup(i[1], sort_key.path)), reverse=sort_key.descending
        )
        ordered = present + absent
    return [key for key, _ in ordered]


_TYPE_RANK = {"null": 0, "string": 1, "number": 2, "boolean": 3, "array": 4, "object": 5}


def _sortable(value: object) -> tuple[int, Any]:
    kind = json_type(value)
    if kind in ("number", "boolean", "string"):
        return _TYPE_RANK[kind], value
    return _TYPE_RANK[kind], json.dumps(value, sort_keys=True)
