"""`pubsub.sqlite`: Tether's durable embedded broker, one SQLite file.

Messages are rows in publish order. Each consumer group has a cursor (the last message handed to
the group) and a lease per message it is working on. A member claims work in one write
transaction: leases whose visibility ran out (RETRY, a crashed or slow member) first, then new
messages past the cursor. Settling deletes the lease; a killed process' leases simply expire and
are claimed again, which is what makes delivery at-least-once. Running handlers renew their
leases, so a slow handler is not delivered twice.

Idle members don't hold the write lock: they check with a read, wake at once when a publisher in
the same process rings (any component instance on the same file), and otherwise poll every
`pollInterval` for publishers in other processes.

A group created by its first subscribe starts at the end of the topic. Messages are deleted once
every group of their topic settled them, when they expire, or after `retentionPeriod`. Per group,
messages are claimed in publish order but handled concurrently (`concurrency`), so ordering is
not guaranteed.

Metadata: `connectionString` (file path; default `<tetherDataDir>/pubsub-<name>.db`),
`visibilityTimeout` (30s), `retryDelay` (1s), `pollInterval` (1s), `retentionPeriod` (168h),
`concurrency` (10), `synchronous` (NORMAL; FULL also survives power loss).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from tether import errors
from tether.components.pubsub._consumer import Runner, cancel, close_all, forever
from tether.components.pubsub._options import Options
from tether.components.pubsub.base import (
    DEFAULT_DRAIN,
    EXPIRES_AT,
    BulkEntry,
    Feature,
    Handler,
    Message,
    Outcome,
    PubSub,
    Subscription,
    expiry_metadata,
)
from tether.resources.component import ComponentSpec

R = TypeVar("R")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pubsub_messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    published_at INTEGER NOT NULL,
    expires_at INTEGER,
    metadata TEXT NOT NULL,
    data BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS ix_pubsub_messages_topic ON pubsub_messages (topic, seq);
CREATE TABLE IF NOT EXISTS pubsub_groups (
    topic TEXT NOT NULL, grp TEXT NOT NULL,
    cursor INTEGER NOT NULL,
    seen_at INTEGER NOT NULL,
    PRIMARY KEY (topic, grp)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pubsub_leases (
    topic TEXT NOT NULL, grp TEXT NOT NULL, seq INTEGER NOT NULL,
    owner TEXT NOT NULL,
    visible_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    PRIMARY KEY (topic, grp, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ix_pubsub_leases_visible ON pubsub_leases (topic, grp, visible_at);
CREATE INDEX IF NOT EXISTS ix_pubsub_leases_seq ON pubsub_leases (topic, seq);
"""

# Delete what no group can still receive: settled by every group of a topic that has groups,
# expired, or past retention. Leases of deleted messages go with them.
_GC = """
DELETE FROM pubsub_messages AS m WHERE m.published_at < :old
   OR (m.expires_at IS NOT NULL AND m.expires_at < :now)
   OR (EXISTS (SELECT 1 FROM pubsub_groups g WHERE g.topic = m.topic)
       AND NOT EXISTS (SELECT 1 FROM pubsub_groups g WHERE g.topic = m.topic AND g.cursor < m.seq)
       AND NOT EXISTS (SELECT 1 FROM pubsub_leases l WHERE l.topic = m.topic AND l.seq = m.seq))
"""

_GC_INTERVAL = 30.0

_Row = tuple[int, int, str, bytes]  # seq, attempts, metadata json, data


def _ms(seconds: float | None = None) -> int:
    return int((time.time() if seconds is None else seconds) * 1000)


class _Bells:
    """Process-wide wake-ups per database file.

    Component instances are per App ID, so a publisher and a subscriber in one process often hold
    different instances of the same file; a registry keyed by path lets them find each other.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_path: dict[str, set[_SqliteSubscription]] = {}

    def add(self, path: str, sub: _SqliteSubscription) -> None:
        with self._lock:
            self._by_path.setdefault(path, set()).add(sub)

    def discard(self, path: str, sub: _SqliteSubscription) -> None:
        with self._lock:
            self._by_path.get(path, set()).discard(sub)

    def ring(self, path: str, topic: str) -> None:
        with self._lock:
            subs = [s for s in self._by_path.get(path, ()) if s.topic == topic]
        for sub in subs:
            sub.wake_threadsafe()


_BELLS = _Bells()


class SqlitePubSub(PubSub):
    def __init__(self, spec: ComponentSpec) -> None:
        opts = Options(spec)
        path = opts.optional("connectionString")
        if path is None:
            path = str(Path(opts.text("tetherDataDir", ".tether")) / f"pubsub-{spec.name}.db")
        self._uri = path.startswith("file:")
        self.path = path if self._uri else str(Path(path).expanduser().resolve())
        self.visibility = opts.duration("visibilityTimeout", 30.0)
        self.retry_delay = opts.duration("retryDelay", 1.0)
        self.poll_interval = opts.duration("pollInterval", 1.0) or 1.0
        self.retention = opts.duration("retentionPeriod", 7 * 24 * 3600.0)
        self.concurrency = opts.integer("concurrency", 10, minimum=1)
        self._synchronous = opts.choice("synchronous", "NORMAL", ("normal", "full")).upper()
        self._executor: ThreadPoolExecutor | None = None
        self._conn: sqlite3.Connection | None = None
        self._subs: set[_SqliteSubscription] = set()
        self._gc_task: asyncio.Task[None] | None = None

    def features(self) -> frozenset[Feature]:
        return frozenset({Feature.BULK_PUBLISH, Feature.MESSAGE_TTL})

    async def init(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="tether-pubsub-sqlite")
        try:
            if not self._uri:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._conn = await self.run(self._connect)
        except (OSError, sqlite3.Error) as exc:
            self._executor.shutdown()
            self._executor = None
            raise errors.PubSubUnavailable(f"cannot open {self.path}: {exc}") from exc
        self._gc_task = asyncio.create_task(forever(self._gc_once, "pub/sub sqlite cleanup"))

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, uri=self._uri, timeout=10.0)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.executescript(_SCHEMA)
        return conn

    async def close(self) -> None:
        await close_all(self._subs)
        await cancel(self._gc_task)
        self._gc_task = None
        if self._executor is None:
            return
        if self._conn is not None:
            await self.run(self._conn.close)
            self._conn = None
        self._executor.shutdown(wait=True)
        self._executor = None

    async def run(self, fn: Callable[[], R]) -> R:
        """Run `fn` on the thread that owns the connection."""
        if self._executor is None:
            raise errors.PubSubUnavailable("the sqlite pub/sub component is closed")
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise errors.PubSubUnavailable("the sqlite pub/sub component is closed")
        return self._conn

    # --- publishing --------------------------------------------------------------------------

    async def publish(self, topic: str, data: bytes, metadata: Mapping[str, str]) -> None:
        await self._insert(topic, [(bytes(data), expiry_metadata(metadata))])

    async def bulk_publish(self, topic: str, entries: Sequence[BulkEntry]) -> list[str]:
        rows = [(bytes(e.data), expiry_metadata(e.metadata)) for e in entries]
        try:
            await self._insert(topic, rows)
        except errors.PubSubPublishFailed:
            return [e.entry_id for e in entries]  # one transaction: all or nothing
        return []

    async def _insert(self, topic: str, rows: list[tuple[bytes, dict[str, str]]]) -> None:
        now = _ms()
        params = [
            (topic, now, int(md[EXPIRES_AT]) if EXPIRES_AT in md else None, json.dumps(md), data)
            for data, md in rows
        ]

        def insert() -> None:
            conn = self._db()
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT INTO pubsub_messages (topic, published_at, expires_at, metadata, data)"
                    " VALUES (?, ?, ?, ?, ?)",
                    params,
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

        try:
            await self.run(insert)
        except (sqlite3.Error, errors.PubSubUnavailable) as exc:
            raise errors.PubSubPublishFailed(f"publish to '{topic}' failed: {exc}") from exc
        _BELLS.ring(self.path, topic)

    # --- consuming ---------------------------------------------------------------------------

    async def subscribe(
        self,
        topic: str,
        group: str,
        handler: Handler,
        metadata: Mapping[str, str] | None = None,
    ) -> Subscription:
        def join() -> None:
            self._db().execute(
                "INSERT INTO pubsub_groups (topic, grp, cursor, seen_at) VALUES"
                " (?, ?, (SELECT COALESCE(MAX(seq), 0) FROM pubsub_messages), ?)"
                " ON CONFLICT (topic, grp) DO UPDATE SET seen_at = excluded.seen_at",
                (topic, group, _ms()),
            )

        try:
            await self.run(join)
        except sqlite3.Error as exc:
            raise errors.PubSubUnavailable(f"subscribe to '{topic}' failed: {exc}") from exc
        sub = _SqliteSubscription(self, topic, group, handler)
        self._subs.add(sub)
        sub.start()
        return sub

    def forget(self, sub: _SqliteSubscription) -> None:
        self._subs.discard(sub)

    def claim(self, topic: str, group: str, owner: str, limit: int) -> list[_Row]:
        """Lease up to `limit` messages of the group to `owner` (runs on the db thread)."""
        conn = self._db()
        now = _ms()
        # A read first: idle polls must not queue up for the write lock.
        (due,) = conn.execute(
            "SELECT EXISTS (SELECT 1 FROM pubsub_leases WHERE topic = ? AND grp = ?"
            " AND visible_at <= ?) OR EXISTS (SELECT 1 FROM pubsub_messages WHERE topic = ? AND"
            " seq > (SELECT cursor FROM pubsub_groups WHERE topic = ? AND grp = ?))",
            (topic, group, now, topic, topic, group),
        ).fetchone()
        if not due:
            return []
        until = now + int(self.visibility * 1000)
        conn.execute("BEGIN IMMEDIATE")
        try:
            leased: dict[int, int] = dict(
                conn.execute(
                    "UPDATE pubsub_leases SET owner = ?, visible_at = ?, attempts = attempts + 1"
                    " WHERE topic = ? AND grp = ? AND seq IN (SELECT seq FROM pubsub_leases"
                    " WHERE topic = ? AND grp = ? AND visible_at <= ? ORDER BY seq LIMIT ?)"
                    " RETURNING seq, attempts",
                    (owner, until, topic, group, topic, group, now, limit),
                ).fetchall()
            )
            if len(leased) < limit:
                fresh = [
                    seq
                    for (seq,) in conn.execute(
                        "SELECT seq FROM pubsub_messages WHERE topic = ? AND seq >"
                        " (SELECT cursor FROM pubsub_groups WHERE topic = ? AND grp = ?)"
                        " ORDER BY seq LIMIT ?",
                        (topic, topic, group, limit - len(leased)),
                    )
                ]
                if fresh:
                    conn.executemany(
                        "INSERT INTO pubsub_leases (topic, grp, seq, owner, visible_at, attempts)"
                        " VALUES (?, ?, ?, ?, ?, 1)",
                        [(topic, group, seq, owner, until) for seq in fresh],
                    )
                    conn.execute(
                        "UPDATE pubsub_groups SET cursor = ? WHERE topic = ? AND grp = ?",
                        (fresh[-1], topic, group),
                    )
                    leased.update(dict.fromkeys(fresh, 1))
            marks = ",".join("?" * len(leased))
            rows = conn.execute(
                f"SELECT seq, metadata, data FROM pubsub_messages WHERE seq IN ({marks})",
                list(leased),
            ).fetchall()
            found = {seq for seq, _, _ in rows}
            gone = [(topic, group, seq) for seq in leased if seq not in found]
            if gone:  # deleted by retention while leased
                conn.executemany(
                    "DELETE FROM pubsub_leases WHERE topic = ? AND grp = ? AND seq = ?", gone
                )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return sorted((seq, leased[seq], md, data) for seq, md, data in rows)

    def settle(self, topic: str, group: str, owner: str, seq: int, delay: float | None) -> None:
        """Ack (`delay` None) or make visible again after `delay` seconds (on the db thread)."""
        conn = self._db()
        if delay is None:
            # Whoever holds the lease now, the message has been handled: deleting is right.
            conn.execute(
                "DELETE FROM pubsub_leases WHERE topic = ? AND grp = ? AND seq = ?",
                (topic, group, seq),
            )
        else:
            conn.execute(
                "UPDATE pubsub_leases SET visible_at = ? WHERE topic = ? AND grp = ? AND seq = ?"
                " AND owner = ?",
                (_ms() + int(delay * 1000), topic, group, seq, owner),
            )

    def renew(self, topic: str, group: str, owner: str, seqs: list[int]) -> None:
        conn = self._db()
        now = _ms()
        conn.execute(
            "UPDATE pubsub_groups SET seen_at = ? WHERE topic = ? AND grp = ?", (now, topic, group)
        )
        if seqs:
            marks = ",".join("?" * len(seqs))
            conn.execute(
                f"UPDATE pubsub_leases SET visible_at = ? WHERE topic = ? AND grp = ?"
                f" AND owner = ? AND seq IN ({marks})",
                (now + int(self.visibility * 1000), topic, group, owner, *seqs),
            )

    async def _gc_once(self) -> None:
        await asyncio.sleep(min(_GC_INTERVAL, max(self.retention, 1.0)))
        now = _ms()
        old = now - int(self.retention * 1000)

        def gc() -> None:
            conn = self._db()
            conn.execute("DELETE FROM pubsub_groups WHERE seen_at < ?", (old,))
            conn.execute(
                "DELETE FROM pubsub_leases AS l WHERE NOT EXISTS (SELECT 1 FROM pubsub_groups g"
                " WHERE g.topic = l.topic AND g.grp = l.grp)"
            )
            conn.execute(_GC, {"old": old, "now": now})
            conn.execute(
                "DELETE FROM pubsub_leases AS l WHERE NOT EXISTS"
                " (SELECT 1 FROM pubsub_messages m WHERE m.seq = l.seq)"
            )

        await self.run(gc)


class _SqliteSubscription(Subscription):
    def __init__(self, broker: SqlitePubSub, topic: str, group: str, handler: Handler) -> None:
        self.topic = topic
        self.group = group
        self._broker = broker
        self._owner = uuid.uuid4().hex
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._runner: Runner[int] = Runner(
            handler, self._settle, limit=broker.concurrency, abandon=self._abandon
        )
        self._poller: asyncio.Task[None] | None = None
        self._renewer: asyncio.Task[None] | None = None
        self._closed = False

    def start(self) -> None:
        _BELLS.add(self._broker.path, self)
        what = f"pub/sub sqlite consumer '{self.topic}'"
        self._poller = asyncio.create_task(forever(self._poll, what))
        self._renewer = asyncio.create_task(forever(self._renew, what + " lease renewal"))

    def wake_threadsafe(self) -> None:
        if not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def _poll(self) -> None:
        free = await self._runner.capacity()
        self._wake.clear()
        b = self._broker
        claim = asyncio.ensure_future(
            b.run(lambda: b.claim(self.topic, self.group, self._owner, free))
        )
        try:
            rows = await asyncio.shield(claim)
        except asyncio.CancelledError:
            # The claim commits on its thread regardless; hand its leases straight back rather
            # than leave them to expire.
            rows = await claim
            await self._release([seq for seq, *_ in rows])
            raise
        for seq, attempts, md, data in rows:
            msg = Message(str(seq), self.topic, data, json.loads(md), attempts)
            self._runner.submit(msg, seq)
        if len(rows) < free:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), b.poll_interval)

    async def _renew(self) -> None:
        await asyncio.sleep(max(self._broker.visibility / 3, 0.05))
        b, seqs = self._broker, self._runner.tokens()
        await b.run(lambda: b.renew(self.topic, self.group, self._owner, seqs))

    async def _settle(self, seq: int, message: Message, outcome: Outcome) -> None:
        b = self._broker
        delay = b.retry_delay if outcome is Outcome.RETRY else None
        await b.run(lambda: b.settle(self.topic, self.group, self._owner, seq, delay))
        if delay is not None:
            self._loop.call_later(delay, self._wake.set)

    async def _abandon(self, seq: int) -> None:
        await self._release([seq])

    async def _release(self, seqs: list[int]) -> None:
        """Make leased messages visible to the group again right away."""
        if not seqs:
            return
        b = self._broker

        def release() -> None:
            for seq in seqs:
                b.settle(self.topic, self.group, self._owner, seq, 0.0)

        await b.run(release)
        _BELLS.ring(b.path, self.topic)

    async def close(self, drain: float = DEFAULT_DRAIN) -> None:
        if self._closed:
            return
        self._closed = True
        _BELLS.discard(self._broker.path, self)
        await cancel(self._poller)
        await self._runner.stop(drain)  # leases keep being renewed while handlers finish
        await cancel(self._renewer)
        self._broker.forget(self)
