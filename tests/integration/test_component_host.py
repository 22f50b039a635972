"""The component host: scopes, broken resource files and hot reload, in process and through a
real `tether dev`."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.compat._components import component, write_components
from tests.fixtures.tether import TetherProcess, wait_until
from tether import errors
from tether.runtime.api.state import StateApi
from tether.runtime.components import ComponentHost


async def test_scopes_hide_components_from_other_app_ids(tmp_path: Path) -> None:
    write_components(
        tmp_path / "res",
        "scoped.yaml",
        component("onlya", "state.sqlite", scopes=["app-a"]),
        component("everyone", "state.in-memory"),
    )
    host = ComponentHost(tmp_path / "data", tmp_path / "res", defaults=False)
    await host.start()
    try:
        assert host.find("state", "onlya", "app-a") is not None
        assert host.find("state", "onlya", "app-b") is None
        assert host.find("pubsub", "onlya", "app-a") is None  # the wrong building block
        assert {s.name for s in host.specs("app-b")} == {"everyone"}
        api = StateApi(host)
        await api.save("app-a", "onlya", [])
        with pytest.raises(errors.StateStoreNotFound):
            await api.get("app-b", "onlya", "k")
    finally:
        await host.stop()


async def test_defaults_unless_the_folder_defines_the_name(tmp_path: Path) -> None:
    write_components(tmp_path / "res", "mine.yaml", component("statestore", "state.in-memory"))
    host = ComponentHost(tmp_path / "data", tmp_path / "res")
    await host.start()
    try:
        types = {s.name: s.type for s in host.specs()}
        assert types["statestore"] == "state.in-memory"
        assert types["pubsub"] == "pubsub.sqlite"
    finally:
        await host.stop()


async def test_a_failing_component_is_left_out_and_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_components(
        tmp_path / "res",
        "mixed.yaml",
        component("unknown", "state.nosuchthing"),
        component("badmeta", "state.sqlite", {"busyTimeout": "soon"}),
        component(
            "unreachable",
            "state.redis",
            {"redisHost": "127.0.0.1:1"},
        ),
        component("fine", "state.in-memory"),
    )
    host = ComponentHost(tmp_path / "data", tmp_path / "res", defaults=False, init_timeout=5)
    await host.start()
    try:
        assert {s.name for s in host.specs()} == {"fine"}
        assert set(host.failures) == {"unknown", "badmeta", "unreachable"}
        assert "busyTimeout" in host.failures["badmeta"]
        assert "res/mixed.yaml" in caplog.text and "unreachable" in caplog.text
    finally:
        await host.stop()


async def test_a_changed_component_is_replaced_and_an_unchanged_one_kept(tmp_path: Path) -> None:
    res = tmp_path / "res"
    write_components(
        res, "a.yaml", component("keep", "state.in-memory"), component("change", "state.in-memory")
    )
    host = ComponentHost(tmp_path / "data", res, defaults=False)
    await host.start()
    try:
        keep = host.find("state", "keep", "x")
        change = host.find("state", "change", "x")
        from tether.resources.loader import load

        write_components(
            res,
            "a.yaml",
            component("keep", "state.in-memory"),
            component("change", "state.in-memory", {"ttlInSeconds": "5"}),
        )
        await host.apply(load(res))
        assert host.find("state", "keep", "x") is keep
        assert host.find("state", "change", "x") is not change
    finally:
        await host.stop()


# --- through a real server --------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TetherProcess, Path]]:
    root = tmp_path_factory.mktemp("host")
    res = root / "resources"
    write_components(
        res,
        "scoped.yaml",
        component("mine", "state.in-memory", scopes=["app-a"]),
        component("theirs", "state.in-memory", scopes=["app-b"]),
    )
    (res / "broken.yaml").write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: broken\n"
        "spec:\n  type: 42x\n"
    )
    proc = TetherProcess(root / "data", extra_args=["--resources", str(res), "--app-id", "app-a"])
    proc.start()
    yield proc, res
    assert proc.stop() == 0, proc.log()


def status(proc: TetherProcess, store: str) -> int:
    return httpx.get(f"{proc.http_url}/v1.0/state/{store}/k", timeout=5).status_code


def test_invalid_yaml_is_reported_with_file_and_field_and_the_server_starts(
    served: tuple[TetherProcess, Path],
) -> None:
    proc, _ = served
    log = proc.log()
    assert "broken.yaml" in log and "spec.type" in log
    assert status(proc, "mine") == 204


def test_scoped_component_is_invisible_to_other_app_ids(served: tuple[TetherProcess, Path]) -> None:
    proc, _ = served
    resp = httpx.get(f"{proc.http_url}/v1.0/state/theirs/k")
    assert resp.status_code == 400
    assert resp.json()["errorCode"] == "ERR_STATE_STORE_NOT_FOUND"
    names = {c["name"] for c in httpx.get(f"{proc.http_url}/v1.0/metadata").json()["components"]}
    assert "mine" in names and "theirs" not in names


def test_hot_reload_adds_and_removes_components(served: tuple[TetherProcess, Path]) -> None:
    proc, res = served
    name = f"hot{uuid.uuid4().hex[:6]}"
    assert status(proc, name) == 400
    path = write_components(res, f"{name}.yaml", component(name, "state.in-memory"))
    wait_until(lambda: status(proc, name) == 204, 3, 0.05, f"{name} to load")
    saved = httpx.post(f"{proc.http_url}/v1.0/state/{name}", json=[{"key": "k", "value": 1}])
    assert saved.status_code == 204
    assert status(proc, "mine") == 204  # untouched by the reload
    path.unlink()
    wait_until(lambda: status(proc, name) == 400, 3, 0.05, f"{name} to be removed")


def test_hot_reload_fixes_a_broken_file(served: tuple[TetherProcess, Path]) -> None:
    proc, res = served
    write_components(res, "broken.yaml", component("broken", "state.in-memory"))
    wait_until(lambda: status(proc, "broken") == 204, 3, 0.05, "the fixed component to load")


async def test_resiliency_policies_follow_every_reload(tmp_path: Path) -> None:
    res = tmp_path / "res"
    res.mkdir()

    def write_policy(retries: int) -> None:
        (res / "resiliency.yaml").write_text(
            "apiVersion: dapr.io/v1alpha1\nkind: Resiliency\nmetadata:\n  name: r\nspec:\n"
            "  policies:\n    retries:\n      few:\n        policy: constant\n"
            f"        duration: 10ms\n        maxRetries: {retries}\n"
            "  targets:\n    apps:\n      shipping:\n        retry: few\n"
        )

    write_policy(2)
    seen: list[int] = []
    host = ComponentHost(tmp_path / "data", res, defaults=False)
    host.on_resources(lambda found: seen.append(len(found.resiliencies)))
    await host.start()
    try:
        from tether.resources.loader import load

        (res / "resiliency.yaml").unlink()
        await host.apply(load(res))
        write_policy(3)
        await host.apply(load(res))
        assert seen == [1, 0, 1]
    finally:
        await host.stop()
