"""A small synchronous client for Tether's workflow management API, used by `tether workflow`.

It depends on nothing but httpx so that the CLI starts fast and stays usable against a server of
another version. Every failure becomes an `ApiError` carrying what went wrong and what to do next;
the CLI prints it, never a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from tether import admin

DEFAULT_URL = "http://127.0.0.1:3500"
PREFIX = "/v1.0-tether/workflows"
TOKEN_HEADER = "dapr-api-token"

# Statuses a purge may touch; the server enforces the same rule, this lets the CLI say so early.
FINISHED = ("COMPLETED", "FAILED", "TERMINATED", "CANCELED")

_HINTS = {
    "ERR_INSTANCE_ID_NOT_FOUND": "find instance IDs with `tether workflow list`",
    "ERR_UNAUTHORIZED": "pass the App ID's token with --token or set DAPR_API_TOKEN",
    "ERR_ADMIN_UNAUTHORIZED": f"pass the server's admin token with --admin-token or set "
    f"{admin.ENV}; for a server on this machine that generated one, point --data-dir at its "
    "data directory",
    "ERR_START_WORKFLOW": "pick another --id, or terminate/purge the existing instance first",
}


class ApiError(Exception):
    def __init__(self, message: str, hint: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.code = code


_AGE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def iso_time(value: str) -> str:
    """An age such as `2d` (that long ago) or an ISO time (UTC unless it says otherwise), as the
    ISO time the API takes; ValueError if it is neither."""
    match = _AGE.match(value)
    if match:
        when = datetime.now(UTC) - timedelta(seconds=int(match[1]) * _UNITS[match[2]])
    else:
        when = datetime.fromisoformat(value.strip())
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def segment(value: str) -> str:
    """One path segment: event names may hold characters that mean something in a URL."""
    return quote(value, safe="")


class Client:
    def __init__(
        self,
        base_url: str,
        token: str | None = None,
        timeout: float = 30.0,
        admin_token: str | None = None,
        prefix: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        #: Which management API the requests go to (workflows unless told otherwise).
        self.prefix = prefix or PREFIX
        headers = {TOKEN_HEADER: token} if token else {}
        headers.update(admin.headers(admin_token))
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: Any = None,
        content: bytes | None = None,
    ) -> Any:
        url = self.prefix + path
        try:
            if content is not None:
                resp = self._http.request(method, url, params=params, content=content)
            elif body is not None:
                resp = self._http.request(method, url, params=params, json=body)
            else:
                resp = self._http.request(method, url, params=params)
        except httpx.TimeoutException as exc:
            raise ApiError(
                f"Tether at {self.base_url} did not answer in time ({type(exc).__name__})",
                "the server may be overloaded; try again, or check its logs",
            ) from None
        except httpx.InvalidURL as exc:
            raise ApiError(
                f"'{self.base_url}' is not a valid server URL: {exc}",
                "use a URL such as http://127.0.0.1:3500 for --server or TETHER_URL",
            ) from None
        except httpx.HTTPError as exc:
            raise ApiError(
                f"cannot reach Tether at {self.base_url}: {exc or type(exc).__name__}",
                "is the server running? start it with `tether dev`, or point --server "
                "(or TETHER_URL) at it",
            ) from None
        return self._decode(resp)

    def _decode(self, resp: httpx.Response) -> Any:
        try:
            data = resp.json() if resp.content else None
        except ValueError:
            data = None
        if resp.is_success:
            return data
        if isinstance(data, dict) and "errorCode" in data:
            code = str(data["errorCode"])
            raise ApiError(str(data.get("message") or code), _HINTS.get(code), code)
        if resp.status_code in (404, 405):
            # No Tether error body: something else answered, or a server without this API.
            raise ApiError(
                f"{self.base_url} does not serve Tether's management API "
                f"(HTTP {resp.status_code} for {resp.request.url.path})",
                "check that --server (or TETHER_URL) points at a Tether server's HTTP port",
            )
        raise ApiError(
            f"the server answered HTTP {resp.status_code}: {resp.text[:300].strip()}",
            "check the server's logs",
        )

    # --- reading ----------------------------------------------------------------------------

    def list_page(
        self,
        *,
        statuses: list[str] | None = None,
        name: str | None = None,
        created_from: str | None = None,
        created_to: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        payloads: bool = False,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"status": statuses or []}
        optional = {
            "name": name,
            "createdFrom": created_from,
            "createdTo": created_to,
            "limit": limit,
            "cursor": cursor,
        }
        params.update({k: v for k, v in optional.items() if v is not None})
        if payloads:
            params["payloads"] = "true"
        result: dict[str, Any] = self.request("GET", "", params=params)
        return result

    def list_all(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every instance matching the filters, following cursors page by page."""
        cursor = filters.pop("cursor", None)
        while True:
            page = self.list_page(cursor=cursor, **filters)
            yield from page["instances"]
            cursor = page.get("cursor")
            if not cursor:
                return

    def get(self, instance_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/{segment(instance_id)}")
        return result

    def history(self, instance_id: str) -> list[dict[str, Any]]:
        data = self.request("GET", f"/{segment(instance_id)}/history")
        events: list[dict[str, Any]] = data["events"]
        return events

    # --- operating --------------------------------------------------------------------------

    def start(
        self,
        name: str,
        *,
        instance_id: str | None = None,
        input: Any = None,
        has_input: bool = False,
        start_at: str | None = None,
    ) -> str:
        body: dict[str, Any] = {"name": name}
        if instance_id:
            body["instanceID"] = instance_id
        if has_input:
            body["input"] = input
        if start_at:
            body["startAt"] = start_at
        return str(self.request("POST", "", body=body)["instanceID"])

    def raise_event(self, instance_id: str, event: str, data: str | None) -> dict[str, Any]:
        # The data goes as the raw JSON text the user typed: no re-encoding surprises.
        content = data.encode() if data is not None else b""
        result: dict[str, Any] = self.request(
            "POST", f"/{segment(instance_id)}/events/{segment(event)}", content=content
        )
        return result

    def lifecycle(self, instance_id: str, op: str, body: Any = None) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/{segment(instance_id)}/{op}", body=body)
        return result

    def purge(self, instance_id: str, *, recursive: bool = True, force: bool = False) -> int:
        params = {"recursive": str(recursive).lower(), "force": str(force).lower()}
        return int(self.request("DELETE", f"/{segment(instance_id)}", params=params)["deleted"])

    def rerun(
        self,
        instance_id: str,
        from_event: int,
        *,
        new_id: str | None = None,
        input: Any = None,
        has_input: bool = False,
    ) -> str:
        body: dict[str, Any] = {"fromEvent": from_event}
        if new_id:
            body["newInstanceID"] = new_id
        if has_input:
            body["input"] = input
        return str(self.request("POST", f"/{segment(instance_id)}/rerun", body=body)["instanceID"])
