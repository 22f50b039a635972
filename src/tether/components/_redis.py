"""One Redis connection from Dapr's usual component metadata.

Metadata: `redisHost` (host:port, default localhost:6379), `redisUsername`, `redisPassword`,
`redisDB` (0), `enableTLS` (false). The driver is imported only when a client is made
(`pip install 'tether[redis]'`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tether import errors
from tether.components._options import Options

if TYPE_CHECKING:
    from redis.asyncio import Redis


@dataclass(frozen=True, slots=True)
class RedisSettings:
    host: str
    port: int
    username: str | None
    password: str | None
    db: int
    tls: bool

    @classmethod
    def from_options(cls, opts: Options) -> RedisSettings:
        hostport = opts.text("redisHost", "localhost:6379")
        host, _, port = hostport.rpartition(":")
        if not host or not port.isdigit():
            raise opts.invalid("redisHost", hostport, "host:port")
        return cls(
            host=host,
            port=int(port),
            username=opts.optional("redisUsername"),
            password=opts.optional("redisPassword"),
            db=opts.integer("redisDB", 0),
            tls=opts.flag("enableTLS", False),
        )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def connect(self, what: str) -> Redis:
        """A client that answered PING; `errors.Unavailable` naming `what` otherwise."""
        from redis.asyncio import Redis
        from redis.exceptions import RedisError

        client = Redis(
            host=self.host,
            port=self.port,
            username=self.username,
            password=self.password,
            db=self.db,
            ssl=self.tls,
        )
        try:
            await client.ping()
        except RedisError as exc:
            await client.aclose()
            raise errors.Unavailable(
                f"{what}: cannot reach Redis at {self.address}: {exc}"
            ) from exc
        return client
