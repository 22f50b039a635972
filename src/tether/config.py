"""Settings, built once at the edge (the CLI) and passed down as frozen values."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class HealthCheck:
    """How the runtime probes an app (daprd's `--app-health-*` flags and defaults)."""

    #: HTTP path probed with GET (gRPC apps answer `AppCallbackHealthCheck/HealthCheck`).
    path: str = "/healthz"
    #: Seconds between probes.
    interval: float = 5.0
    #: Seconds a probe may take before it counts as failed.
    timeout: float = 0.5
    #: Consecutive failed probes after which the app is unhealthy.
    threshold: int = 3


@dataclass(frozen=True, slots=True)
class AppConfig:
    """One App ID the runtime serves: its identity and, optionally, how to call into the app."""

    app_id: str
    #: Token the app presents as `dapr-api-token`; None: only token-less callers act as it.
    api_token: str | None = None
    #: Port the app listens on (on `address`); None: the App ID has no app endpoint.
    port: int | None = None
    #: `http` or `grpc`: how the runtime calls into the app.
    protocol: str = "http"
    #: Host the app listens on.
    address: str = "127.0.0.1"
    #: Sent to the app as `dapr-api-token` on every call into it (daprd's APP_API_TOKEN).
    app_token: str | None = None
    #: Health probing; None (the default, like daprd) never probes and counts the app healthy.
    health: HealthCheck | None = None
    #: Largest request body accepted from or for this App ID, in bytes; None: the server's.
    max_body_bytes: int | None = None

    @property
    def endpoint(self) -> str | None:
        if self.port is None:
            return None
        return f"{self.protocol}://{self.address}:{self.port}"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """How one Tether server process listens and stores."""

    #: Interface both listeners bind to. Loopback unless asked otherwise.
    host: str = "127.0.0.1"
    #: Dapr's default gRPC port, so SDK defaults reach Tether without configuration.
    grpc_port: int = 50001
    #: Dapr's default HTTP port.
    http_port: int = 3500
    #: Where the embedded stores keep their files.
    data_dir: Path = Path(".tether")
    #: Workflow store URL; None means SQLite in `data_dir`.
    store_url: str | None = None
    #: App ID that token-less callers on this server act as (embedded dev server only).
    default_app_id: str = "tether-dev"
    #: API tokens accepted, each naming the App ID it authenticates. Empty: no token needed.
    api_tokens: dict[str, str] = field(default_factory=dict)
    #: Token the management API (/v1.0-tether/...) requires. None: open on loopback; a server
    #: listening beyond loopback generates one into `data_dir/admin-token` (see `tether.admin`).
    admin_token: str | None = None
    #: Largest request body or gRPC message accepted, in bytes.
    max_request_bytes: int = 16 * 1024 * 1024
    #: Emit logs as JSON lines instead of human-readable text.
    json_logs: bool = False
    #: Minimum log level.
    log_level: str = "INFO"
    #: The default App ID's app endpoint (`tether dev --app-port`); None: no app to call.
    app: AppConfig | None = None
    #: Folders or files of Dapr resources (Resiliency, ...) read at start.
    resources_paths: tuple[Path, ...] = ()
