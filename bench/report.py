"""Turn per-target results into the figures table and Tether/peer ratios."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bench.common import METRICS, Metric

TETHER_PREFIX = "tether-"


@dataclass
class TargetOutcome:
    """What one target produced: figures per workload, or why it has none."""

    figures: dict[str, dict[str, float]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # Not installed: a hint, not a failure.
    skipped: str | None = None
    # Could not run at all (server or database would not start).
    failed: str | None = None
    # Average cores other processes kept busy meanwhile: the noise gauge.
    other_cpu_cores: float | None = None

    def value(self, metric: Metric) -> float | None:
        return self.figures.get(metric.workload, {}).get(metric.key)


def is_tether(target: str) -> bool:
    return target.startswith(TETHER_PREFIX)


def fmt(value: float) -> str:
    # Fixed decimals by magnitude: readable in a column and never exponential.
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def ratio(tether: float, peer: float) -> float | None:
    return tether / peer if peer else None


def _ratio_text(r: float) -> str:
    # Three decimals below 1 so 0.098 does not collapse to 0.10.
    return f"{r:.3f}" if r < 1 else f"{r:.2f}"


def verdict(r: float, metric: Metric) -> str:
    """Say which way the ratio cuts, since 0.5 is good for ms and bad for wf/s."""
    tether_better = r < 1 if metric.better == "lower" else r > 1
    factor = 1 / r if r < 1 else r
    if abs(factor - 1) < 0.005:
        return "same"
    return f"{factor:.2f}x {'better' if tether_better else 'worse'}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    line = "  ".join("-" * w for w in widths)

    def render(cells: Sequence[str]) -> str:
        first, *rest = cells
        return "  ".join(
            [first.ljust(widths[0])] + [c.rjust(w) for c, w in zip(rest, widths[1:], strict=True)]
        )

    return "\n".join([render(header), line, *(render(r) for r in rows)])


def _cell(outcome: TargetOutcome, metric: Metric) -> str:
    if outcome.skipped is not None:
        return "skipped"
    if outcome.failed is not None:
        return "FAILED"
    value = outcome.value(metric)
    if value is not None:
        return fmt(value)
    return "ERROR" if metric.workload in outcome.errors else "-"


def figures_table(outcomes: Mapping[str, TargetOutcome], workloads: Sequence[str]) -> str:
    targets = list(outcomes)
    metrics = [m for m in METRICS if m.workload in workloads]
    header = ["metric", "better", *targets]
    rows = [
        [f"{m.label} ({m.unit})", m.better, *(_cell(outcomes[t], m) for t in targets)]
        for m in metrics
    ]
    rows.append(["other CPU meanwhile (cores)", "", *(_other_cpu(outcomes[t]) for t in targets)])
    return _table(header, rows)


def _other_cpu(outcome: TargetOutcome) -> str:
    return "-" if outcome.other_cpu_cores is None else f"{outcome.other_cpu_cores:.2f}"


def ratio_rows(
    outcomes: Mapping[str, TargetOutcome], workloads: Sequence[str]
) -> list[dict[str, object]]:
    """Every Tether target against every peer, for each metric both measured."""
    rows: list[dict[str, object]] = []
    tethers = [t for t in outcomes if is_tether(t)]
    peers = [t for t in outcomes if not is_tether(t)]
    for metric in (m for m in METRICS if m.workload in workloads):
        for t in tethers:
            for p in peers:
                tv, pv = outcomes[t].value(metric), outcomes[p].value(metric)
                if tv is None or pv is None:
                    continue
                r = ratio(tv, pv)
                if r is None:
                    continue
                rows.append(
                    {
                        "metric": f"{metric.workload}.{metric.key}",
                        "tether": t,
                        "peer": p,
                        "ratio": r,
                        "better": metric.better,
                        "verdict": verdict(r, metric),
                    }
                )
    return rows


def ratio_tables(outcomes: Mapping[str, TargetOutcome], workloads: Sequence[str]) -> str:
    """One table per Tether target: metrics down, peers across."""
    peers = [t for t in outcomes if not is_tether(t) and outcomes[t].figures]
    tethers = [t for t in outcomes if is_tether(t) and outcomes[t].figures]
    if not peers or not tethers:
        return "(no ratios: need at least one Tether target and one peer with figures)"
    metrics = [m for m in METRICS if m.workload in workloads]
    blocks: list[str] = []
    for t in tethers:
        rows: list[list[str]] = []
        for m in metrics:
            cells: list[str] = []
            for p in peers:
                tv, pv = outcomes[t].value(m), outcomes[p].value(m)
                r = ratio(tv, pv) if tv is not None and pv is not None else None
                cells.append("-" if r is None else f"{_ratio_text(r)} ({verdict(r, m)})")
            rows.append([f"{m.label} ({m.unit}, {m.better} better)", *cells])
        blocks.append(f"{t} / peer\n" + _table(["metric", *peers], rows))
    return "\n\n".join(blocks)


LEGEND = (
    "Ratio = Tether figure / peer figure. For ms and s (lower is better) a ratio "
    "below 1 means Tether is faster;\nfor wf/s (higher is better) a ratio above 1 "
    "means Tether is faster. The bracket says which, and by how much."
)
