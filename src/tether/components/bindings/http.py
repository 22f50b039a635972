"""`bindings.http`: an output binding that sends HTTP requests to one base URL.

Metadata: `url` (required), `securityToken` and `securityTokenHeader` (sent with every request),
`responseTimeout` (none), `maxResponseBodySize` (bytes; default unlimited), `errorIfNot2XX`
(true).

Operations are HTTP methods (`get`, `head`, `post`, `put`, `patch`, `delete`, `options`,
`trace`) and `create` (POST). Request metadata: `path` is appended to the URL, keys starting with
a capital letter are sent as headers, `errorIfNot2XX` overrides the component's. The response
data is the body; its metadata is `statusCode`, `status` and the response headers. As in Dapr,
a non-2xx answer fails the call (unless `errorIfNot2XX` is false) but still reports its metadata.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from tether.components._options import Options
from tether.components.bindings.base import (
    BindingFailed,
    BindingResponse,
    OutputBinding,
    unsupported,
)
from tether.resources.component import ComponentSpec

_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})
_OPERATIONS = frozenset(
    {"create", "get", "head", "post", "put", "patch", "delete", "options", "trace"}
)
_TRUTHY = ("true", "1", "yes", "on", "y")


class HttpBinding(OutputBinding):
    def __init__(self, spec: ComponentSpec) -> None:
        opts = Options(spec)
        self._name = spec.name
        self._url = opts.required("url", "the base URL requests go to")
        if not self._url.startswith(("http://", "https://")):
            raise opts.invalid("url", self._url, "an http:// or https:// URL")
        self._token = opts.optional("securityToken")
        self._token_header = opts.optional("securityTokenHeader")
        timeout = opts.seconds("responseTimeout", 0.0)
        self._timeout = timeout or None
        self._max_body = opts.integer("maxResponseBodySize", 0)
        self._error_if_not_2xx = opts.flag("errorIfNot2XX", True)
        self._client: httpx.AsyncClient | None = None

    def operations(self) -> frozenset[str]:
        return _OPERATIONS

    async def init(self) -> None:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self._timeout, follow_redirects=True)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def invoke(
        self, operation: str, data: bytes, metadata: Mapping[str, str]
    ) -> BindingResponse:
        if operation.lower() not in _OPERATIONS:
            raise unsupported(self._name, operation, _OPERATIONS)
        if self._client is None:
            raise BindingFailed(f"binding {self._name} is not initialised")
        method = "POST" if operation.lower() == "create" else operation.upper()
        url = self._url
        if metadata.get("path"):
            url = url.rstrip("/") + "/" + metadata["path"].lstrip("/")
        error_if_not_2xx = self._error_if_not_2xx
        if metadata.get("errorIfNot2XX"):
            error_if_not_2xx = metadata["errorIfNot2XX"].strip().lower() in _TRUTHY
        headers = {"Accept": "application/json; charset=utf-8"}
        if method in _WITH_BODY:
            headers["Content-Type"] = "application/json; charset=utf-8"
        if self._token and self._token_header:
            headers[self._token_header] = self._token
        headers.update({k: v for k, v in metadata.items() if k[:1].isupper()})
        for trace in ("traceparent", "tracestate", "baggage"):
            if metadata.get(trace):
                headers[trace] = metadata[trace]
        try:
            async with self._client.stream(
                method, url, content=data if method in _WITH_BODY else None, headers=headers
            ) as resp:
                body = bytearray()
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if self._max_body and len(body) >= self._max_body:
                        del body[self._max_body :]
                        break
        except httpx.HTTPError as exc:
            raise BindingFailed(f"{method} {url} failed: {exc!r}") from exc
        meta = {
            "statusCode": str(resp.status_code),
            "status": f"{resp.status_code} {resp.reason_phrase}",
        }
        for key in resp.headers:
            meta[_canonical(key)] = ", ".join(resp.headers.get_list(key))
        if error_if_not_2xx and resp.status_code // 100 != 2:
            raise BindingFailed(f"received status code {resp.status_code}", meta)
        return BindingResponse(bytes(body), meta)


def _canonical(header: str) -> str:
    """Go's canonical header spelling (`content-type` -> `Content-Type`), as daprd reports it."""
    return "-".join(part.capitalize() for part in header.split("-"))
