"""Keeps every App ID's subscriptions running against the brokers, as resources and apps change.

The wanted set is recomputed on a short interval and whenever something pokes the manager (an
app registered, became healthy or unhealthy, a stream opened); it is cheap, in-memory work. Per
App ID with an app channel that is healthy:

- declarative subscriptions: the `Subscription` resources scoped to it (the component host's);
- programmatic ones: the app's `GET /dapr/subscribe`, read when the app registers or becomes
  healthy again (an app restart) and on `refresh`;

and, independent of app channels, the open streaming subscriptions. Each runs as one broker
subscription in consumer group = App ID, so runtimes serving the same App ID compete for
messages. A subscription is restarted when its definition changes or its component is replaced
(hot reload), and stopped when it is no longer wanted: messages in flight go back to the broker.
One that cannot start (unknown pubsub, bad CEL, topic not allowed) is logged once, naming where
it came from, and tried again on every pass, so fixing the resource fixes the subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from tether import errors
from tether.components.pubsub.base import PubSub
from tether.components.pubsub.base import Subscription as BrokerSubscription
from tether.resources.component import ComponentSpec
from tether.runtime.contracts import AppChannel, AppRegistry, ComponentHost
from tether.runtime.metrics import PubSubMetrics
from tether.runtime.pubsub import envelope as ce
from tether.runtime.pubsub import scopes
from tether.runtime.pubsub.appdelivery import AppDelivery, BulkDelivery
from tether.runtime.pubsub.delivery import Deliver, InboundPolicy, Pipeline, Ready
from tether.runtime.pubsub.model import Kind, TopicSubscription, from_programmatic, from_resource
from tether.runtime.pubsub.routing import RouteInvalid, Router
from tether.runtime.pubsub.streaming import StreamSession

log = logging.getLogger("tether.pubsub")

#: (app_id, pubsub, topic) for app subscriptions; (app_id, "", "stream:<n>") for streams.
Key = tuple[str, str, str]
#: Seconds between attempts to read an app's `/dapr/subscribe` while it cannot be reached.
FETCH_RETRY = 1.0


class InboundPolicies(Protocol):
    """The Resiliency policies in force (`runtime.resiliency.Resiliencies`)."""

    def policy_for_component(self, name: str, direction: Any) -> InboundPolicy: ...


class StartFailed(Exception):
    """A wanted subscription could not start; the message says why and where it came from."""


@dataclass(slots=True)
class _Running:
    sub: TopicSubscription
    broker: PubSub
    handle: BrokerSubscription
    session: StreamSession | None = None


class PubSubManager:
    def __init__(
        self,
        host: ComponentHost,
        apps: AppRegistry,
        policies: InboundPolicies | None = None,
        interval: float = 1.0,
        metrics: PubSubMetrics | None = None,
    ) -> None:
        self.host = host
        self.apps = apps
        self.policies = policies
        self.interval = interval
        self.metrics = metrics or PubSubMetrics()
        self._running: dict[Key, _Running] = {}
        self._programmatic: dict[str, list[TopicSubscription]] = {}
        #: The channel each app's programmatic subscriptions were read from.
        self._read_from: dict[str, AppChannel] = {}
        self._stale: set[str] = set()
        self._next_fetch: dict[str, float] = {}
        self._fetching: dict[str, asyncio.Task[None]] = {}
        #: Last problem logged per subscription, so each is logged once, not once per pass.
        self.problems: dict[Key, str] = {}
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="pubsub")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for fetch in list(self._fetching.values()):
            fetch.cancel()
        async with self._lock:
            await self._stop_many(list(self._running))

    def poke(self) -> None:
        """Reconcile soon (resources reloaded, an app changed)."""
        self._wake.set()

    def app_changed(self, app_id: str, available: bool) -> None:
        """An app registered, was removed, or its health changed (`Apps.on_change`)."""
        if available:
            self._stale.add(app_id)
            self._next_fetch.pop(app_id, None)
        self.poke()

    async def refresh(self, app_id: str) -> None:
        """Read the app's programmatic subscriptions again now, then reconcile."""
        channel = self.apps.channel(app_id)
        if channel is not None:
            await self._fetch(app_id, channel)
        await self.reconcile()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.reconcile()
            except Exception:  # one bad pass must not end delivery for every app
                log.exception("pub/sub reconcile failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)

    # --- what is subscribed ------------------------------------------------------------------

    def describe(self, app_id: str) -> list[dict[str, Any]]:
        """The App ID's running subscriptions, for the metadata API."""
        return [r.sub.describe() for k, r in sorted(self._running.items()) if k[0] == app_id]

    def running(self, app_id: str) -> list[TopicSubscription]:
        return [r.sub for k, r in sorted(self._running.items()) if k[0] == app_id]

    def counts(self) -> dict[tuple[str, ...], float]:
        """Running subscriptions per (App ID, pubsub, kind), for the metrics."""
        out: dict[tuple[str, ...], float] = {}
        for run in self._running.values():
            key = (run.sub.app_id, run.sub.pubsubname, run.sub.kind.value.lower())
            out[key] = out.get(key, 0.0) + 1.0
        return out

    def _wanted(self) -> dict[Key, TopicSubscription]:
        wanted: dict[Key, TopicSubscription] = {}
        now = time.monotonic()
        for app_id in self.apps.app_ids():
            channel = self.apps.channel(app_id)
            if channel is None or not channel.healthy:
                continue
            unread = self._read_from.get(app_id) is not channel or app_id in self._stale
            due = app_id not in self._fetching and self._next_fetch.get(app_id, 0.0) <= now
            if unread and due:
                self._fetching[app_id] = asyncio.get_running_loop().create_task(
                    self._fetch(app_id, channel), name=f"pubsub-subscribe:{app_id}"
                )
            declared = [from_resource(s, app_id) for s in self.host.subscriptions(app_id)]
            for sub in declared + self._programmatic.get(app_id, []):
                key = (app_id, sub.pubsubname, sub.topic)
                first = wanted.setdefault(key, sub)
                if first is not sub:
                    self._report(
                        (app_id, sub.pubsubname, f"{sub.topic}#{sub.kind.value}"),
                        f"{sub.where}: {first.where} already subscribes app '{app_id}' to "
                        f"{sub.pubsubname}/{sub.topic}; ignored",
                        logging.WARNING,
                    )
        return wanted

    async def _fetch(self, app_id: str, channel: AppChannel) -> None:
        try:
            items = await channel.subscriptions()
        except Exception as exc:
            self._next_fetch[app_id] = time.monotonic() + FETCH_RETRY
            self._report((app_id, "", "/dapr/subscribe"),
                         f"app '{app_id}': cannot read /dapr/subscribe yet: {exc}",
                         logging.INFO)  # fmt: skip
            return
        finally:
            self._fetching.pop(app_id, None)
        if self.apps.channel(app_id) is not channel:
            return  # re-registered meanwhile: the next pass reads the new endpoint
        self.problems.pop((app_id, "", "/dapr/subscribe"), None)
        self._programmatic[app_id] = from_programmatic(items, app_id, channel.routes_optional)
        self._read_from[app_id] = channel
        self._stale.discard(app_id)
        self.poke()

    # --- reconcile ---------------------------------------------------------------------------

    async def reconcile(self) -> None:
        async with self._lock:
            wanted = self._wanted()
            for app_id in set(self._programmatic) - set(self.apps.app_ids()):
                self._programmatic.pop(app_id, None)
                self._read_from.pop(app_id, None)
            doomed: list[Key] = []
            restart: list[tuple[Key, _Running]] = []
            for key, run in self._running.items():
                broker = self.host.find("pubsub", run.sub.pubsubname, run.sub.app_id)
                if run.session is not None:
                    if run.session.closed or broker is None:
                        doomed.append(key)
                    elif broker is not run.broker:
                        restart.append((key, run))
                elif wanted.get(key) != run.sub or broker is not run.broker:
                    doomed.append(key)
            await self._stop_many(doomed + [key for key, _ in restart])
            for key, run in restart:
                assert run.session is not None
                try:
                    self._running[key] = await self._start(run.sub, run.session)
                except StartFailed as exc:
                    self._report(key, str(exc))
                    run.session.close()
            for key, sub in wanted.items():
                if key in self._running:
                    continue
                try:
                    self._running[key] = await self._start(sub)
                except StartFailed as exc:
                    self._report(key, str(exc))
                else:
                    self.problems.pop(key, None)
            for key in [k for k in self.problems if k[2].startswith("stream:")]:
                if key not in self._running:
                    self.problems.pop(key, None)

    def _report(self, key: Key, message: str, level: int = logging.ERROR) -> None:
        if self.problems.get(key) != message:
            self.problems[key] = message
            log.log(level, "%s", message)

    async def _stop_many(self, keys: list[Key]) -> None:
        runs = [self._running.pop(k) for k in keys if k in self._running]
        for run in runs:
            log.info("unsubscribing %s", run.sub.where)
        # An app that went unhealthy must not hold messages: give in-flight deliveries only a
        # short drain, and the broker redelivers what they did not finish.
        await asyncio.gather(*(r.handle.close(drain=2.0) for r in runs), return_exceptions=True)

    def _spec(self, name: str, app_id: str) -> ComponentSpec | None:
        return next(
            (s for s in self.host.specs(app_id) if s.name == name and s.kind == "pubsub"), None
        )

    def _policy(self, pubsub: str) -> Callable[[], InboundPolicy] | None:
        policies = self.policies
        if policies is None:
            return None
        return lambda: policies.policy_for_component(pubsub, "inbound")

    async def _start(
        self, sub: TopicSubscription, session: StreamSession | None = None
    ) -> _Running:
        """Subscribe `sub` on its broker; raises `StartFailed` saying why not."""
        app_id, name, topic = sub.app_id, sub.pubsubname, sub.topic
        broker = self.host.find("pubsub", name, app_id)
        if not isinstance(broker, PubSub):
            raise StartFailed(f"{sub.where}: pubsub '{name}' is not found for app '{app_id}'")
        spec = self._spec(name, app_id)
        if spec is not None and not scopes.allowed(spec.metadata, scopes.SUBSCRIPTION, app_id,
                                                   topic):  # fmt: skip
            raise StartFailed(f"{sub.where}: topic '{topic}' is not allowed for app '{app_id}'")
        try:
            router = Router(sub.rules, sub.default_route, sub.where)
        except RouteInvalid as exc:
            raise StartFailed(str(exc)) from exc
        try:
            raw = ce.flag(sub.metadata, ce.RAW_PAYLOAD)
        except ValueError as exc:
            raise StartFailed(f"{sub.where}: {exc}") from exc
        deliver: Deliver
        ready: Ready
        if session is not None:
            deliver, ready = session.deliver, session.ready
        else:
            target = AppDelivery(self.apps, app_id, name)
            deliver, ready = target.deliver, target.ready
            if sub.bulk.enabled:
                deliver = BulkDelivery(target, topic, sub.bulk, raw).deliver
        meter = self.metrics.delivery(app_id, name, topic)
        pipeline = Pipeline(sub, router, broker, deliver, ready, self._policy(name), raw, meter)
        broker_metadata = {k: v for k, v in sub.metadata.items() if k != ce.RAW_PAYLOAD}
        try:
            await broker.init()
            handle = await broker.subscribe(topic, app_id, pipeline.handle, broker_metadata)
        except (errors.TetherError, OSError) as exc:
            message = exc.message if isinstance(exc, errors.TetherError) else str(exc)
            raise StartFailed(f"{sub.where}: cannot subscribe to {name}/{topic}: {message}") \
                from exc  # fmt: skip
        log.info("subscribed %s", sub.where,
                 extra={"app_id": app_id, "pubsub": name, "topic": topic})  # fmt: skip
        return _Running(sub, broker, handle, session)

    # --- streaming subscriptions ---------------------------------------------------------------

    async def open_stream(
        self,
        app_id: str,
        pubsub: str,
        topic: str,
        metadata: Mapping[str, str],
        dead_letter_topic: str | None,
    ) -> StreamSession:
        """Start a streaming subscription; raises the `TetherError` a publish would for an
        unknown or forbidden pubsub, and `PubSubUnavailable` when the broker refuses."""
        if not pubsub:
            raise errors.PubSubNameEmpty("pubsubName is required")
        if not topic:
            raise errors.PubSubTopicEmpty("topic is required")
        if self.host.find("pubsub", pubsub, app_id) is None:
            if any(s.name == pubsub and s.kind == "pubsub" for s in self.host.specs()):
                raise errors.PubSubForbidden(f"pubsub {pubsub} is not allowed for app id {app_id}")
            raise errors.PubSubNotFound(f"pubsub {pubsub} is not found")
        session = StreamSession(app_id, pubsub, topic)
        sub = TopicSubscription(
            app_id=app_id,
            kind=Kind.STREAMING,
            pubsubname=pubsub,
            topic=topic,
            default_route="/",
            dead_letter_topic=dead_letter_topic or None,
            metadata=dict(metadata),
            where=f"streaming subscription #{session.number} of app '{app_id}' ({pubsub}/{topic})",
        )
        async with self._lock:
            try:
                run = await self._start(sub, session)
            except StartFailed as exc:
                if "is not allowed" in str(exc):
                    raise errors.PubSubForbidden(str(exc)) from exc
                raise errors.PubSubUnavailable(str(exc)) from exc
            self._running[(app_id, "", f"stream:{session.number}")] = run
        return session

    async def close_stream(self, session: StreamSession) -> None:
        session.close()
        async with self._lock:
            await self._stop_many([(session.app_id, "", f"stream:{session.number}")])
