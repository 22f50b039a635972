"""The admin credential's rules (`tether.admin`): who needs a token, where it is kept and sent."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tether import admin
from tether.devloop.runfile import AppSpec
from tether.devloop.server import Endpoint, _server_env
from tether.devloop.session import app_env


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.0.0.2", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.0.0.5", False),
        ("myhost.local", False),  # a name may resolve to anything
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert admin.is_loopback(host) is loopback


def test_a_loopback_server_with_no_token_is_open_and_drops_a_stale_file(tmp_path: Path) -> None:
    admin.write(tmp_path, "stale")
    assert admin.for_server("127.0.0.1", None, tmp_path) == admin.Access(None)
    assert not (tmp_path / admin.FILE_NAME).exists()


def test_a_configured_token_is_required_and_never_written(tmp_path: Path) -> None:
    admin.write(tmp_path, "stale")
    for host in ("127.0.0.1", "0.0.0.0"):
        assert admin.for_server(host, "s3cret", tmp_path) == admin.Access("s3cret")
        assert not (tmp_path / admin.FILE_NAME).exists()


def test_beyond_loopback_a_token_is_generated_into_an_owner_only_file(tmp_path: Path) -> None:
    data = tmp_path / "not-yet"
    first = admin.for_server("0.0.0.0", None, data)
    assert first.token is not None and len(first.token) >= 32
    assert first.file == data / admin.FILE_NAME
    assert stat.S_IMODE(first.file.stat().st_mode) == 0o600
    assert admin.read(data) == first.token
    # Each start makes a new one: a token copied from an earlier run stops working.
    assert admin.for_server("", None, data).token not in (None, first.token)
    assert [p.name for p in data.iterdir()] == [admin.FILE_NAME]  # no partial file left


def test_a_rewritten_file_is_owner_only_whatever_was_there(tmp_path: Path) -> None:
    (tmp_path / admin.FILE_NAME).write_text("old")
    (tmp_path / admin.FILE_NAME).chmod(0o644)
    path = admin.write(tmp_path, "new")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert admin.read(tmp_path) == "new"


def test_clients_send_the_given_token_else_the_local_servers_file(tmp_path: Path) -> None:
    assert admin.for_client(None, "http://127.0.0.1:3500", tmp_path) is None  # no file
    admin.write(tmp_path, "from-file")
    assert admin.for_client("given", "http://127.0.0.1:3500", tmp_path) == "given"
    assert admin.for_client(None, "http://127.0.0.1:3500", tmp_path) == "from-file"
    assert admin.for_client(None, "http://localhost:3500/", tmp_path) == "from-file"
    assert admin.for_client(None, "http://[::1]:3500", tmp_path) == "from-file"
    # The file belongs to a server on this machine: never sent to another one.
    assert admin.for_client(None, "http://10.0.0.5:3500", tmp_path) is None
    assert admin.for_client(None, "https://tether.example", tmp_path) is None
    assert admin.for_client(None, "http://127.0.0.1:3500", None) is None
    assert admin.for_client(None, "http://127.0.0.1:3500", tmp_path / "missing") is None


def test_how_a_request_presents_the_token() -> None:
    assert admin.headers("t") == {"Authorization": "Bearer t"}
    assert admin.headers(None) == {}
    assert admin.presented({"authorization": "Bearer abc"}) == "abc"
    assert admin.presented({"authorization": "bearer  abc "}) == "abc"
    assert admin.presented({admin.HEADER: "xyz"}) == "xyz"
    assert admin.presented({"authorization": "Basic abc"}) is None
    assert admin.presented({"authorization": "Bearer "}) is None
    assert admin.presented({"dapr-api-token": "app"}) is None
    assert admin.matches("abc", "abc") and not admin.matches("abd", "abc")
    assert not admin.matches("", "abc") and not admin.matches("é", "abc")


def test_the_admin_token_reaches_a_started_server_but_not_the_apps(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(admin.ENV, "from-env")
    assert _server_env("given")[admin.ENV] == "given"
    assert admin.ENV not in _server_env(None)
    app = AppSpec("orders", ("x",), Path("."))
    assert admin.ENV not in app_env(app, Endpoint("http://127.0.0.1:3500", 50001), "tok")
    # Unless the run file gives it to the app on purpose.
    mine = AppSpec("ops", ("x",), Path("."), env={admin.ENV: "for-ops"})
    assert app_env(mine, Endpoint("http://127.0.0.1:3500", 50001), "tok")[admin.ENV] == "for-ops"
