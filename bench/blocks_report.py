"""Tables and target verdicts for ``bench.blocks``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from bench.blocks_measure import CpuShare

TARGET_ADDED_P50_MS = 0.5
TARGET_RATIO = 0.5
DIRECT, HTTP, GRPC = "direct", "tether http", "tether grpc"


@dataclass
class Row:
    block: str
    backend: str
    path: str
    p50_ms: float | None = None
    p99_ms: float | None = None
    ops_s: float | None = None
    # Cores used during the throughput run (None until measured).
    cpu: CpuShare | None = None
    error: str | None = None
    note: str = ""

    @property
    def key(self) -> tuple[str, str]:
        return self.block, self.backend


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _ops(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def baseline(rows: Sequence[Row], row: Row) -> Row | None:
    for r in rows:
        if r.key == row.key and r.path == DIRECT and r.error is None:
            return r
    return None


@dataclass(frozen=True)
class Verdict:
    row: Row
    added_ms: float | None
    ratio: float | None

    @property
    def latency_ok(self) -> bool | None:
        return None if self.added_ms is None else self.added_ms <= TARGET_ADDED_P50_MS

    @property
    def throughput_ok(self) -> bool | None:
        return None if self.ratio is None else self.ratio >= TARGET_RATIO


def verdicts(rows: Sequence[Row]) -> list[Verdict]:
    out: list[Verdict] = []
    for r in rows:
        base = baseline(rows, r)
        if r.path == DIRECT or base is None or r.error is not None:
            continue
        added = None if r.p50_ms is None or base.p50_ms is None else r.p50_ms - base.p50_ms
        ratio = None if r.ops_s is None or not base.ops_s else r.ops_s / base.ops_s
        out.append(Verdict(r, added, ratio))
    return out


def _cpu(c: CpuShare | None) -> str:
    if c is None:
        return "-"
    return "/".join(_fmt(v, 2) for v in (c.client, c.server, c.backends, c.other))


def _server_ms_per_op(r: Row) -> str:
    if r.cpu is None or r.cpu.server is None or not r.ops_s or r.path == DIRECT:
        return ""
    return f"{1000.0 * r.cpu.server / r.ops_s:.2f}"


def table(rows: Sequence[Row], in_flight: int) -> str:
    by_row = {id(v.row): v for v in verdicts(rows)}
    head = [
        "block",
        "backend",
        "path",
        "p50 ms",
        "p99 ms",
        f"ops/s ({in_flight} in flight)",
        "added p50 ms",
        "ops/s vs direct",
        "tether CPU ms/op",
        "cores client/tether/backend/other",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    for r in rows:
        v = by_row.get(id(r))
        if r.error is not None:
            cells = [r.block, r.backend, r.path, f"FAILED: {r.error}", *([""] * 6)]
        else:
            added = ratio = ""
            if v is not None:
                if v.added_ms is not None:
                    added = f"{v.added_ms:+.3f}" + ("" if v.latency_ok else " MISS")
                if v.ratio is not None:
                    ratio = f"{v.ratio:.0%}" + ("" if v.throughput_ok else " MISS")
            cells = [
                r.block,
                r.backend,
                r.path,
                _fmt(r.p50_ms),
                _fmt(r.p99_ms),
                _ops(r.ops_s),
                added,
                ratio,
                _server_ms_per_op(r),
                _cpu(r.cpu),
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _why(v: Verdict, cpus: int) -> str:
    c = v.row.cpu
    if c is None:
        return ""
    hints = []
    if c.server is not None and c.server >= 0.85:
        hints.append(f"Tether server at {c.server:.2f} cores (one Python process: its ceiling)")
    busy = c.client + (c.server or 0.0) + c.backends + (c.other or 0.0)
    if busy >= 0.9 * cpus:
        hints.append(f"machine saturated ({busy:.1f} of {cpus} cores busy)")
    return "; ".join(hints)


def target_lines(rows: Sequence[Row], cpus: int) -> list[str]:
    out = []
    for v in verdicts(rows):
        r = v.row
        parts = []
        if v.added_ms is not None:
            ok = "met" if v.latency_ok else "MISSED"
            parts.append(f"added p50 {v.added_ms:+.3f} ms (<= {TARGET_ADDED_P50_MS}) {ok}")
        if v.ratio is not None:
            ok = "met" if v.throughput_ok else "MISSED"
            parts.append(f"throughput {v.ratio:.0%} of direct (>= {TARGET_RATIO:.0%}) {ok}")
        line = f"  {r.block} / {r.backend} / {r.path}: " + "; ".join(parts)
        if not (v.latency_ok and v.throughput_ok):
            why = _why(v, cpus)
            if why:
                line += f" [{why}]"
        out.append(line)
    return out


def as_json(rows: Sequence[Row], meta: dict[str, Any]) -> dict[str, Any]:
    by_row = {id(v.row): v for v in verdicts(rows)}
    out_rows = []
    for r in rows:
        d = asdict(r)
        v = by_row.get(id(r))
        d["added_p50_ms"] = v.added_ms if v else None
        d["throughput_ratio"] = v.ratio if v else None
        out_rows.append(d)
    return {"meta": meta, "rows": out_rows}
