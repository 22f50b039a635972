"""Dapr's multi-app run file (`dapr run -f`, `diagrid dev run -f`), read for `tether run -f`.

The same file works with all three tools, so Tether reads Dapr's format as Dapr does and adds
nothing to it:

    version: 1
    common:                      # shared by every app; an app's own value wins
      resourcesPath: ./resources
      env: {LOG_LEVEL: debug}
    apps:
      - appID: orders            # defaults to appDirPath's folder name
        appDirPath: ./orders     # the command's working directory
        appPort: 8001
        appProtocol: http        # or grpc
        command: ["python", "app.py"]
        env: {ORDER_COUNT: "3"}

Paths resolve like Dapr's: `common` ones and `appDirPath` against the file's folder, an app's
own `resourcesPath(s)` against its `appDirPath`. Resources come, as in Dapr, from the app's
`resourcesPath(s)`, else `<appDirPath>/.dapr/resources` when that exists, else `common`'s.

Fields Dapr knows that mean nothing to Tether (sidecar ports, log destinations, ...) are accepted
and reported as notes; fields nobody knows are reported as warnings, since they are most often
typos. Anything malformed is a `RunFileError` naming the file and the field.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn

import yaml

from tether.resources._fields import kind_of

#: Names `tether run -f DIR` looks for in DIR: Tether's examples use the first, Dapr the second.
DEFAULT_NAMES = ("dev.yaml", "dapr.yaml")
PROTOCOLS = ("http", "grpc")
# The server's rule (tether.runtime.apps), checked here too so a typo fails before anything starts.
_APP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

_USED = {"appProtocol", "env", "resourcesPath", "resourcesPaths"}
_USED_APP = _USED | {"appID", "appDirPath", "appPort", "command"}
# Dapr fields that configure a per-app sidecar; with one shared Tether server they do nothing.
_WHY = {
    "daprHTTPPort": "all apps share one Tether server; set its port with --http-port",
    "daprGRPCPort": "all apps share one Tether server; set its port with --grpc-port",
    "configFilePath": "put Configuration resources in resourcesPath instead",
}
_IGNORED_SHARED = {
    "configFilePath", "apiListenAddresses", "enableProfiling", "logLevel", "appMaxConcurrency",
    "placementHostAddress", "appSSL", "maxBodySize", "readBufferSize", "enableAppHealthCheck",
    "appHealthCheckPath", "appHealthProbeInterval", "appHealthProbeTimeout", "appHealthThreshold",
    "enableApiLogging", "runtimePath", "daprdLogDestination", "appLogDestination",
    "schedulerHostAddress", "componentsPath",
}  # fmt: skip
_IGNORED_APP = _IGNORED_SHARED | {
    "appChannelAddress", "daprHTTPPort", "daprGRPCPort", "profilePort", "metricsPort",
    "unixDomainSocket", "daprInternalGRPCPort", "containerImage", "containerImagePullPolicy",
    "createService",
}  # fmt: skip
_TOP = {"version", "name", "common", "apps"}


class RunFileError(ValueError):
    """A run file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True, slots=True)
class AppSpec:
    """One app to register with Tether and run."""

    #: The App ID: the identity the app's API token stands for.
    app_id: str
    #: The program and its arguments, run without a shell.
    command: tuple[str, ...]
    #: Working directory of the command.
    app_dir: Path
    #: Where the app listens for calls from Tether (invocation, pub/sub delivery); None if it
    #: only calls out.
    app_port: int | None = None
    #: How Tether calls the app: "http" or "grpc".
    app_protocol: str = "http"
    #: Variables added to the app's environment; they win over the ones `tether run` injects.
    env: Mapping[str, str] = field(default_factory=dict)
    #: Folders of resource YAML this app wants the server to load.
    resources: tuple[Path, ...] = ()


@dataclass(frozen=True, slots=True)
class RunFile:
    path: Path
    apps: tuple[AppSpec, ...]
    #: Fields that were accepted but do nothing in Tether, and fields nobody knows.
    notes: tuple[str, ...] = ()

    @property
    def resources(self) -> tuple[Path, ...]:
        """Every app's resource folders, once each, in file order: the server loads them all."""
        return tuple(dict.fromkeys(p for app in self.apps for p in app.resources))


def find(path: Path) -> Path:
    """The run file itself: `path`, or a default name inside it when it is a folder."""
    if path.is_dir():
        for name in DEFAULT_NAMES:
            if (path / name).is_file():
                return path / name
        raise RunFileError(f"{path}: no {' or '.join(DEFAULT_NAMES)} in this folder")
    if not path.is_file():
        raise RunFileError(f"{path}: no such file")
    return path


def load(path: Path) -> RunFile:
    """Read and validate a run file (or a folder holding one). Raises `RunFileError`."""
    path = find(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RunFileError(f"{path}: cannot read: {exc}") from exc
    return parse(text, path)


def parse(text: str, path: Path) -> RunFile:
    """Validate the run file `text`, resolving relative paths against `path`'s folder."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or exc
        raise RunFileError(f"{path}: {at}invalid YAML: {problem}") from exc
    return _Parser(path, path.resolve().parent).run(document)


def from_flags(
    app_id: str,
    command: Sequence[str],
    app_port: str | None = None,
    app_protocol: str | None = None,
    resources: tuple[Path, ...] = (),
) -> AppSpec:
    """The one app `tether run --app-id ... -- CMD` describes, checked by the same rules as a
    run file's apps; errors name the flag."""
    check = _Parser(None, Path.cwd())
    return AppSpec(
        app_id=check.app_id(app_id, "--app-id"),
        command=tuple(command),
        app_dir=Path.cwd(),
        app_port=check.port(app_port, "--app-port"),
        app_protocol=check.protocol(app_protocol, "--app-protocol") or "http",
        resources=resources,
    )


class _Parser:
    def __init__(self, path: Path | None, base: Path) -> None:
        self.path = path
        self.base = base
        self.notes: list[str] = []

    def fail(self, where: str, message: str) -> NoReturn:
        text = f"{where}: {message}" if where else message
        raise RunFileError(f"{self.path}: {text}" if self.path is not None else text)

    def run(self, document: object) -> RunFile:
        if not isinstance(document, dict):
            self.fail("", "expected a run file (a mapping with version and apps)")
        self.check_keys(document, "", _TOP, set())
        version = document.get("version")
        if version is None:
            self.fail("version", "missing; this format is `version: 1`")
        if isinstance(version, bool) or version not in (1, "1"):
            self.fail("version", f"only version 1 is supported, got {version!r}")
        common = document.get("common") or {}
        if not isinstance(common, dict):
            self.fail("common", f"expected a mapping, got {kind_of(common)}")
        self.check_keys(common, "common", _USED, _IGNORED_SHARED)
        common_env = self.env(common.get("env"), "common.env")
        common_protocol = self.protocol(common.get("appProtocol"), "common.appProtocol")
        common_resources = self.resource_paths(common, "common", self.base)
        apps = document.get("apps")
        if not isinstance(apps, list) or not apps:
            got = "nothing" if apps is None else kind_of(apps)
            self.fail("apps", f"expected a list of apps (appID, appDirPath, command), got {got}")
        specs: list[AppSpec] = []
        seen: dict[str, str] = {}
        for index, raw in enumerate(apps):
            where = f"apps[{index}]"
            if not isinstance(raw, dict):
                self.fail(where, f"expected a mapping, got {kind_of(raw)}")
            spec = self.app(raw, where, common_env, common_protocol, common_resources)
            if spec.app_id in seen:
                self.fail(
                    f"{where}.appID", f"{spec.app_id!r} is already used by {seen[spec.app_id]}"
                )
            seen[spec.app_id] = where
            specs.append(spec)
        path = self.path if self.path is not None else self.base
        return RunFile(path, tuple(specs), tuple(dict.fromkeys(self.notes)))

    def app(
        self,
        raw: dict[object, object],
        where: str,
        common_env: dict[str, str],
        common_protocol: str | None,
        common_resources: tuple[Path, ...],
    ) -> AppSpec:
        self.check_keys(raw, where, _USED_APP, _IGNORED_APP)
        app_dir = self.base
        if raw.get("appDirPath") is not None:
            app_dir = self.directory(raw["appDirPath"], f"{where}.appDirPath", self.base)
        app_id = raw.get("appID")
        if app_id is None:
            if raw.get("appDirPath") is None:
                self.fail(f"{where}.appID", "missing (needed when there is no appDirPath)")
            app_id = app_dir.name
        app_id = self.app_id(app_id, f"{where}.appID")
        command = raw.get("command")
        if not isinstance(command, list) or not command:
            self.fail(
                f"{where}.command",
                'expected the program and its arguments as a list, e.g. ["python", "app.py"]',
            )
        argv = []
        for i, part in enumerate(command):
            if isinstance(part, dict | list) or part is None:
                self.fail(f"{where}.command[{i}]", f"expected a string, got {kind_of(part)}")
            argv.append(_text(part))
        env = {**common_env, **self.env(raw.get("env"), f"{where}.env")}
        protocol = self.protocol(raw.get("appProtocol"), f"{where}.appProtocol")
        own = self.resource_paths(raw, where, app_dir)
        local = app_dir / ".dapr" / "resources"
        resources = own or ((local,) if local.is_dir() else common_resources)
        return AppSpec(
            app_id=app_id,
            command=tuple(argv),
            app_dir=app_dir,
            app_port=self.port(raw.get("appPort"), f"{where}.appPort"),
            app_protocol=protocol or common_protocol or "http",
            env=env,
            resources=resources,
        )

    # --- fields ---------------------------------------------------------------------------------

    def check_keys(
        self, raw: dict[object, object], where: str, used: set[str], ignored: set[str]
    ) -> None:
        known = used | ignored
        for key in raw:
            name = f"{where}.{key}" if where else str(key)
            if not isinstance(key, str):
                self.fail(where, f"field names must be strings, got {key!r}")
            if key in ignored:
                why = _WHY.get(key, "not used by tether run")
                self.notes.append(f"{name} is ignored: {why}")
            elif key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                self.notes.append(f"{name} is not a run file field; ignored{hint}")

    def app_id(self, value: object, where: str) -> str:
        if not isinstance(value, str) or not _APP_ID.match(value):
            self.fail(
                where,
                f"{value!r} is not a valid App ID: letters, digits, '.', '_' and '-', "
                "starting with a letter or digit, at most 128 characters",
            )
        return value

    def env(self, value: object, where: str) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            got = kind_of(value)
            self.fail(where, f"expected a mapping of variable names to values, got {got}")
        env = {}
        for key, item in value.items():
            if not isinstance(key, str) or not key or "=" in key:
                self.fail(where, f"{key!r} is not a valid variable name")
            if isinstance(item, dict | list):
                self.fail(f"{where}.{key}", f"expected a string, got {kind_of(item)}")
            env[key] = _text(item)
        return env

    def protocol(self, value: object, where: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or value.lower() not in PROTOCOLS:
            self.fail(where, f"expected http or grpc, got {value!r}")
        return value.lower()

    def port(self, value: object, where: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
            self.fail(where, f"expected a port number (1-65535), got {value!r}")
        return value

    def resource_paths(self, raw: dict[object, object], where: str, base: Path) -> tuple[Path, ...]:
        paths: list[Path] = []
        many = raw.get("resourcesPaths")
        if many is not None:
            # Dapr's docs show both a YAML list and a comma-separated string.
            items = many.split(",") if isinstance(many, str) else many
            if not isinstance(items, list):
                self.fail(f"{where}.resourcesPaths", f"expected a list, got {kind_of(many)}")
            for i, item in enumerate(items):
                paths.append(self.directory(item, f"{where}.resourcesPaths[{i}]", base))
        if raw.get("resourcesPath") is not None:
            paths.append(self.directory(raw["resourcesPath"], f"{where}.resourcesPath", base))
        return tuple(dict.fromkeys(paths))

    def directory(self, value: object, where: str, base: Path) -> Path:
        if not isinstance(value, str) or not value.strip():
            self.fail(where, f"expected a folder path, got {kind_of(value)}")
        path = (base / Path(value.strip()).expanduser()).resolve()
        if not path.is_dir():
            self.fail(where, f"no such folder: {path}")
        return path


def _text(value: object) -> str:
    """A YAML scalar as Dapr's CLI writes it into the environment (`true`, not `True`)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
