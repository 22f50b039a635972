"""The metrics registry and its Prometheus text exposition."""

from __future__ import annotations

import math
import random

import pytest

from tests.fixtures.prometheus import parse
from tether.metrics import OTHER, Bounded, Registry, number


def test_counter_lines_with_help_type_and_escaped_labels() -> None:
    registry = Registry()
    things = registry.counter(
        "t_things_total", 'Things done.\nSecond line, a \\ and a ".', ("a", "b")
    )
    things.labels("x", "y").inc(2.5)
    things.labels("x", 'q"\\\n').inc()
    things.labels("x", 'q"\\\n').inc()
    assert registry.render().splitlines() == [
        '# HELP t_things_total Things done.\\nSecond line, a \\\\ and a ".',
        "# TYPE t_things_total counter",
        't_things_total{a="x",b="q\\"\\\\\\n"} 2',
        't_things_total{a="x",b="y"} 2.5',
    ]


def test_histogram_buckets_are_cumulative_and_inclusive() -> None:
    registry = Registry()
    latency = registry.histogram("t_seconds", "Latency.", ("op",), buckets=(1, 0.1))
    series = latency.labels("get")
    for value in (0.05, 0.1, 0.5, 5.0):
        series.observe(value)
    assert registry.render().splitlines() == [
        "# HELP t_seconds Latency.",
        "# TYPE t_seconds histogram",
        't_seconds_bucket{op="get",le="0.1"} 2',
        't_seconds_bucket{op="get",le="1.0"} 3',
        't_seconds_bucket{op="get",le="+Inf"} 4',
        't_seconds_sum{op="get"} 5.65',
        't_seconds_count{op="get"} 4',
    ]


def test_gauges_set_and_collected() -> None:
    registry = Registry()
    level = registry.gauge("t_level", "A level.").labels()
    level.set(5)
    level.inc(2)
    level.dec(0.5)
    state = {"a": 1, "b": 0}
    registry.gauge(
        "t_up", "Up.", ("name",), collect=lambda: {(k,): float(v) for k, v in state.items()}
    )
    first = parse(registry.render())
    assert first.get("t_level") == 6.5
    assert first.get("t_up", name="a") == 1 and first.get("t_up", name="b") == 0
    state["c"] = 1
    del state["a"]
    second = parse(registry.render())
    assert second.series("t_up") == [{"name": "b"}, {"name": "c"}]


def test_series_without_observations_are_not_rendered_but_families_are() -> None:
    registry = Registry()
    registry.counter("t_total", "Nothing yet.", ("a",))
    assert registry.render() == "# HELP t_total Nothing yet.\n# TYPE t_total counter\n"
    assert Registry().render() == ""


def test_exposition_parses_back_to_what_was_counted() -> None:
    rng = random.Random(7)
    alphabet = 'ab"\\\n{}=, é'
    registry = Registry()
    requests = registry.counter("t_requests_total", "Requests.", ("route", "status"))
    latency = registry.histogram("t_latency_seconds", "Latency.", ("route",))
    expected: dict[tuple[str, str], float] = {}
    observed: dict[str, list[float]] = {}
    for _ in range(300):
        route = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6)))
        status = rng.choice(["200", "404", "500"])
        requests.labels(route, status).inc()
        expected[(route, status)] = expected.get((route, status), 0) + 1
        value = rng.random() * 2
        latency.labels(route).observe(value)
        observed.setdefault(route, []).append(value)
    got = parse(registry.render())
    assert got.types == {"t_requests_total": "counter", "t_latency_seconds": "histogram"}
    for (route, status), count in expected.items():
        assert got.get("t_requests_total", route=route, status=status) == count
    for route, values in observed.items():
        assert got.get("t_latency_seconds_count", route=route) == len(values)
        assert got.get("t_latency_seconds_sum", route=route) == pytest.approx(sum(values))
        for bound in (0.1, 1.0):
            le = f"{bound:.1f}"
            in_bucket = sum(v <= bound for v in values)
            assert got.get("t_latency_seconds_bucket", route=route, le=le) == in_bucket
        assert got.get("t_latency_seconds_bucket", route=route, le="+Inf") == len(values)


def test_registry_returns_existing_families_and_refuses_conflicts() -> None:
    registry = Registry()
    first = registry.counter("t_total", "Help.", ("a",))
    assert registry.counter("t_total", "Other help.", ("a",)) is first
    with pytest.raises(ValueError, match="registered differently"):
        registry.counter("t_total", "Help.", ("b",))
    with pytest.raises(ValueError, match="registered differently"):
        registry.gauge("t_total", "Help.", ("a",))
    registry.histogram("t_seconds", "Help.", buckets=(1, 2))
    with pytest.raises(ValueError, match="registered differently"):
        registry.histogram("t_seconds", "Help.", buckets=(1, 3))


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda r: r.counter("bad-name", "x"), "invalid metric name"),
        (lambda r: r.counter("t_total", "x", ("bad-label",)), "invalid label name"),
        (lambda r: r.counter("t_total", "x", ("__reserved",)), "invalid label name"),
        (lambda r: r.histogram("t_seconds", "x", ("le",)), "bucket label"),
        (lambda r: r.histogram("t_seconds", "x", buckets=(1, 1)), "distinct"),
        (lambda r: r.counter("t_total", "x", ("a", "b")).labels("only one"), "takes labels"),
    ],
)
def test_invalid_definitions_and_label_counts(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make(Registry())  # type: ignore[operator]


def test_bounded_keeps_the_first_values_and_folds_the_rest() -> None:
    topic = Bounded(2)
    assert [topic(v) for v in ["a", "b", "a", "c", "d", "b"]] == ["a", "b", "a", OTHER, OTHER, "b"]


def test_numbers_as_the_format_spells_them() -> None:
    assert [number(v) for v in (3.0, 0.25, math.inf, -math.inf, 1e20)] == [
        "3",
        "0.25",
        "+Inf",
        "-Inf",
        "1e+20",
    ]
    assert number(math.nan) == "NaN"
