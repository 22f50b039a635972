"""Settings, built once at the edge (the CLI) and passed down as frozen values."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


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
    #: Largest request body or gRPC message accepted, in bytes.
    max_request_bytes: int = 16 * 1024 * 1024
    #: Emit logs as JSON lines instead of human-readable text.
    json_logs: bool = False
    #: Minimum log level.
    log_level: str = "INFO"
