"""Prometheus metrics: counters, gauges and histograms with labels, in the text exposition format.

Our own rather than `prometheus_client`: the hot path here is one attribute add on a series
found once (`labels`), with no lock, because one event loop does all the counting; and no
dependency, global registry or process collectors come with it.

    registry = Registry()
    requests = registry.counter("tether_things_total", "Things done.", ("kind",))
    done = requests.labels("big")   # once per label set: a dict lookup
    done.inc()                      # per event: an add

A series lives as long as its registry once its label values were used, so label values must
come from a bounded set: names the operator configured (components, App IDs), a route template,
a status code. An open-ended one (a topic an app chose) goes through `Bounded` first.

Gauges that mirror state kept elsewhere (apps' health, loaded components) are `collect`ed: a
function reads that state at scrape time, so nothing is maintained while serving requests.
"""

from __future__ import annotations

import abc
import math
import re
from bisect import bisect_left
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar

__all__ = [
    "LATENCY_BUCKETS",
    "OTHER",
    "Bounded",
    "Collect",
    "Counter",
    "CounterSeries",
    "Gauge",
    "GaugeSeries",
    "Histogram",
    "HistogramSeries",
    "Registry",
    "number",
]

Labels = tuple[str, ...]
#: Seconds, from a fast in-memory call to a slow app: request and delivery latencies.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0
)  # fmt: skip
#: The label value `Bounded` reports once its limit is reached.
OTHER = "_other"
_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def number(value: float) -> str:
    """A sample value as the exposition format spells it."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def _label_text(names: Sequence[str], values: Sequence[str]) -> str:
    if not names:
        return ""
    pairs = ",".join(f'{n}="{_escape_label(v)}"' for n, v in zip(names, values, strict=True))
    return "{" + pairs + "}"


class Bounded:
    """Label values from an open set (topics apps choose), kept to the first `limit` distinct
    ones: later values are all reported as `_other`, so a series count stays bounded however
    many values appear."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()

    def __call__(self, value: str) -> str:
        if value in self._seen:
            return value
        if len(self._seen) < self.limit:
            self._seen.add(value)
            return value
        return OTHER


S = TypeVar("S")


class _Family(abc.ABC, Generic[S]):
    """A metric name with its help, type and label names, and its series by label values."""

    kind: ClassVar[str]

    def __init__(self, name: str, help: str, labelnames: Sequence[str] = ()) -> None:
        if not _NAME.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        for label in labelnames:
            if not _LABEL.match(label) or label.startswith("__"):
                raise ValueError(f"invalid label name {label!r} for {name}")
        self.name = name
        self.help = help
        self.labelnames: Labels = tuple(labelnames)
        self._series: dict[Labels, S] = {}
        #: Rendered `{a="x",...}` per label values, made once per series.
        self._text: dict[Labels, str] = {}

    def labels(self, *values: str) -> S:
        """The series for these label values (in `labelnames` order), created on first use."""
        series = self._series.get(values)
        if series is None:
            series = self._add(values)
        return series

    def _add(self, values: Labels) -> S:
        if len(values) != len(self.labelnames):
            raise ValueError(
                f"{self.name} takes labels {self.labelnames}, got {len(values)} values"
            )
        if not all(isinstance(v, str) for v in values):
            raise TypeError(f"{self.name}: label values must be strings, got {values!r}")
        series = self._new()
        self._series[values] = series
        self._text[values] = _label_text(self.labelnames, values)
        return series

    @abc.abstractmethod
    def _new(self) -> S: ...

    def same_as(self, other: _Family[Any]) -> bool:
        return type(self) is type(other) and self.labelnames == other.labelnames

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {_escape_help(self.help)}", f"# TYPE {self.name} {self.kind}"]

    @abc.abstractmethod
    def lines(self) -> Iterator[str]: ...


class CounterSeries:
    """One counter series: only goes up (or back to zero when the process restarts)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        """Add `amount`, which must not be negative (not checked: this is the hot path)."""
        self.value += amount


class Counter(_Family[CounterSeries]):
    kind = "counter"

    def _new(self) -> CounterSeries:
        return CounterSeries()

    def lines(self) -> Iterator[str]:
        for values in sorted(self._series):
            yield f"{self.name}{self._text[values]} {number(self._series[values].value)}"


class GaugeSeries:
    """One gauge series: a value that goes up and down."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def set(self, value: float) -> None:
        self.value = value

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def dec(self, amount: float = 1.0) -> None:
        self.value -= amount


#: What a collected gauge's function returns: value by label values.
Collect = Callable[[], Mapping[Labels, float]]


class Gauge(_Family[GaugeSeries]):
    kind = "gauge"

    def __init__(
        self, name: str, help: str, labelnames: Sequence[str] = (), collect: Collect | None = None
    ) -> None:
        super().__init__(name, help, labelnames)
        #: Reads the values at scrape time; replaces the series set with `labels`.
        self.collect = collect

    def _new(self) -> GaugeSeries:
        return GaugeSeries()

    def lines(self) -> Iterator[str]:
        if self.collect is None:
            for values in sorted(self._series):
                yield f"{self.name}{self._text[values]} {number(self._series[values].value)}"
            return
        found = self.collect()
        for values in sorted(found):
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name}: collected {values!r} for {self.labelnames}")
            yield f"{self.name}{_label_text(self.labelnames, values)} {number(found[values])}"


class HistogramSeries:
    """One histogram series: counts per bucket (not cumulative until rendered) and the sum."""

    __slots__ = ("_bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        #: One count per bound, then one for +Inf.
        self.counts = [0] * (len(bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        # `le` is inclusive: a value equal to a bound falls in that bound's bucket.
        self.counts[bisect_left(self._bounds, value)] += 1
        self.sum += value


class Histogram(_Family[HistogramSeries]):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> None:
        if "le" in labelnames:
            raise ValueError(f"{name}: 'le' is the bucket label of a histogram")
        bounds = tuple(sorted(float(b) for b in buckets if not math.isinf(b)))
        if not bounds or len(set(bounds)) != len(bounds):
            raise ValueError(f"{name}: buckets must be distinct and finite, got {buckets!r}")
        super().__init__(name, help, labelnames)
        self.buckets = bounds
        self._le = [number(b) if not float(b).is_integer() else f"{b:.1f}" for b in bounds]
        self._le.append("+Inf")

    def _new(self) -> HistogramSeries:
        return HistogramSeries(self.buckets)

    def same_as(self, other: _Family[Any]) -> bool:
        return (
            super().same_as(other)
            and isinstance(other, Histogram)
            and (other.buckets == self.buckets)
        )

    def lines(self) -> Iterator[str]:
        names = (*self.labelnames, "le")
        for values in sorted(self._series):
            series = self._series[values]
            total = 0
            for le, count in zip(self._le, series.counts, strict=True):
                total += count
                yield f"{self.name}_bucket{_label_text(names, (*values, le))} {total}"
            text = self._text[values]
            yield f"{self.name}_sum{text} {number(series.sum)}"
            yield f"{self.name}_count{text} {total}"


F = TypeVar("F", bound=_Family[Any])


class Registry:
    """The metrics of one server. Asking for a family that exists returns it (so parts built
    twice share their series); asking with another type or other labels is an error."""

    def __init__(self) -> None:
        self._families: dict[str, _Family[Any]] = {}

    def _get(self, family: F) -> F:
        found = self._families.get(family.name)
        if found is None:
            self._families[family.name] = family
            return family
        if not family.same_as(found):
            raise ValueError(f"metric {family.name} is already registered differently")
        assert isinstance(found, type(family))
        return found

    def counter(self, name: str, help: str, labelnames: Sequence[str] = ()) -> Counter:
        return self._get(Counter(name, help, labelnames))

    def gauge(
        self, name: str, help: str, labelnames: Sequence[str] = (), collect: Collect | None = None
    ) -> Gauge:
        """A gauge; with `collect`, one whose values that function reads at scrape time (a
        second registration's function replaces the first's)."""
        gauge = self._get(Gauge(name, help, labelnames))
        if collect is not None:
            gauge.collect = collect
        return gauge

    def histogram(
        self,
        name: str,
        help: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = LATENCY_BUCKETS,
    ) -> Histogram:
        return self._get(Histogram(name, help, labelnames, buckets))

    def render(self) -> str:
        """Every family in the Prometheus text format (version 0.0.4), sorted by name."""
        out: list[str] = []
        for name in sorted(self._families):
            family = self._families[name]
            out += family.header()
            out.extend(family.lines())
        return "\n".join(out) + "\n" if out else ""
