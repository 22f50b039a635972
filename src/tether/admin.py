"""The admin credential: what lets a caller manage a Tether server (everything under /v1.0-tether/).

An App ID's API token says which app is calling; it never grants management, or any app could
replace another App ID or purge every workflow. The rules:

- An admin token configured (`tether dev --admin-token`, or `TETHER_ADMIN_TOKEN`): every
  management request must carry it, as `Authorization: Bearer <token>` or `tether-admin-token`.
- None configured, listening on loopback only: the management API is open to local callers, so
  `tether run` and the CLI work with no set-up.
- None configured, listening beyond loopback: the server makes one up at start and writes it to
  `<data-dir>/admin-token` (mode 0600), where the CLI and `tether run` on the same machine find it.

Clients (`tether workflow`, `tether run`) send the token they are given, or else the one in the
data directory's file, but only to a server on a loopback address: the file belongs to a server
on this machine and must not be handed to another.

Standard library only: the CLI imports this and should start fast.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

#: Environment variable holding the admin token, for the server and its clients alike.
ENV = "TETHER_ADMIN_TOKEN"
#: Header that carries the admin token for clients that cannot set `Authorization`.
HEADER = "tether-admin-token"
#: The file in the data directory that holds a token the server generated.
FILE_NAME = "admin-token"


@dataclass(frozen=True, slots=True)
class Access:
    """What a server's management API requires of its callers."""

    #: The admin token every management request must carry; None: open to every caller, which
    #: only a server listening on loopback alone allows.
    token: str | None
    #: Where the server wrote a token it generated; None when the token was configured.
    file: Path | None = None


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only. Any other name may resolve to anything."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def for_server(host: str, configured: str | None, data_dir: Path) -> Access:
    """The access rule for a server listening on `host`; writes a generated token to disk.

    A token file left by an earlier run is removed when this run does not generate one: a client
    would otherwise send a stale token and be refused for it.
    """
    if configured:
        _remove(data_dir)
        return Access(configured)
    if is_loopback(host):
        _remove(data_dir)
        return Access(None)
    token = secrets.token_urlsafe(32)
    return Access(token, write(data_dir, token))


def write(data_dir: Path, token: str) -> Path:
    """Write `token` to the data directory's token file, readable by its owner alone."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / FILE_NAME
    # Written aside and renamed, so that a client never reads half a token.
    partial = path.with_name(f".{FILE_NAME}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a leftover partial file keeps its old mode through O_CREAT
        os.write(fd, f"{token}\n".encode())
    finally:
        os.close(fd)
    os.replace(partial, path)
    return path


def read(data_dir: Path) -> str | None:
    """The token in the data directory's token file, if there is one."""
    try:
        token = (data_dir / FILE_NAME).read_text().strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    return token or None


def _remove(data_dir: Path) -> None:
    (data_dir / FILE_NAME).unlink(missing_ok=True)


def for_client(given: str | None, server_url: str, data_dir: Path | None) -> str | None:
    """The admin token a client sends: the one given, else the one a server on this machine
    wrote to `data_dir`, when `server_url` is a loopback address."""
    if given:
        return given
    host = urlsplit(server_url).hostname
    if data_dir is None or host is None or not is_loopback(host):
        return None
    return read(data_dir)


def headers(token: str | None) -> dict[str, str]:
    """The request headers that present `token`."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def presented(request_headers: Mapping[str, str]) -> str | None:
    """The admin token a request carries, if any (header names are lower case, as in ASGI)."""
    scheme, _, credentials = request_headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request_headers.get(HEADER) or None


def matches(given: str, expected: str) -> bool:
    """Constant-time comparison: how long it takes says nothing about how much was right."""
    return hmac.compare_digest(given.encode(), expected.encode())


__all__ = [
    "ENV",
    "FILE_NAME",
    "HEADER",
    "Access",
    "for_client",
    "for_server",
    "headers",
    "is_loopback",
    "matches",
    "presented",
    "read",
    "write",
]
