"""The markdown table and the target check, from the raw figures ``harness.py`` writes.

``python -m bench.report bench/results/<file>.json`` re-renders a saved run.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PEERS = ("dune-client", "dune-client-csv", "dlt")
CEILINGS = ("fetch-only", "load-only")
RESULT_KINDS = ("results", "results_csv", "latest", "latest_csv")


@dataclass(frozen=True)
class Summary:
    """The repetitions of one contender at one size."""

    contender: str
    rows: int
    n: int
    work_s: float
    work_min: float
    work_max: float
    wall_s: float
    cpu_s: float
    rss_mb: float
    requests: float
    bytes_down: float
    failed: int
    wrong: dict[str, int] | None = None

    @property
    def rate(self) -> float:
        return self.rows / self.work_s if self.work_s else 0.0


def summarise(runs: Iterable[dict[str, Any]]) -> dict[tuple[int, str], Summary]:
    groups: dict[tuple[int, str], list[dict[str, Any]]] = {}
    failures: dict[tuple[int, str], int] = {}
    for run in runs:
        if run["rerun"]:
            continue
        key = (run["rows"], run["contender"])
        if run["ok"]:
            groups.setdefault(key, []).append(run)
        else:
            failures[key] = failures.get(key, 0) + 1
    out = {}
    for key, group in groups.items():
        work = [r["work_s"] for r in group]
        out[key] = Summary(
            contender=key[1],
            rows=key[0],
            n=len(group),
            work_s=statistics.median(work),
            work_min=min(work),
            work_max=max(work),
            wall_s=statistics.median(r["wall_s"] for r in group),
            cpu_s=statistics.median(r.get("work_cpu_s") or 0.0 for r in group),
            rss_mb=statistics.median(r["peak_rss_mb"] for r in group),
            requests=statistics.median(r["requests"] for r in group),
            bytes_down=statistics.median(r["bytes_down"] for r in group),
            failed=failures.get(key, 0),
            wrong=_worst(r.get("wrong_values") for r in group),
        )
    for key, count in failures.items():
        if key not in out:
            out[key] = Summary(key[1], key[0], 0, 0, 0, 0, 0, 0, 0, 0, 0, count)
    return out


def _worst(checks: Iterable[dict[str, int] | None]) -> dict[str, int] | None:
    """The most wrong values per column over the repetitions (None: not checked)."""
    out: dict[str, int] | None = None
    for check in checks:
        if check is None:
            continue
        out = out or {}
        for column, count in check.items():
            out[column] = max(out.get(column, 0), count)
    return out


def _fidelity(wrong: dict[str, int] | None) -> str:
    if wrong is None:
        return "-"
    if not wrong:
        return "none"
    return ", ".join(f"{column} {count}" for column, count in sorted(wrong.items()))


def reruns(runs: Iterable[dict[str, Any]]) -> dict[tuple[int, str], dict[str, Any]]:
    return {(r["rows"], r["contender"]): r for r in runs if r["rerun"]}


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if a and b else "-"


def _rows(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    if n >= 1_000 and n % 1_000 == 0:
        return f"{n // 1_000}k"
    return f"{n:,}"


def table(data: dict[str, Any]) -> str:
    summaries = summarise(data["runs"])
    again = reruns(data["runs"])
    head = (
        "| rows | contender | rows/s | core ÷ it | ÷ ceiling | work s (min–max) | CPU s | wall s "
        "| peak RSS MB | RSS ÷ core | requests | MB down | rerun requests | rerun MB down "
        "| wrong values |"
    )
    lines = [head, "|" + "---|" * head.count(" | ") + "---|"]
    order = {c: i for i, c in enumerate(data["contenders"])}
    for rows in data["rows"]:
        core = summaries.get((rows, "core"))
        ceiling = _ceiling(summaries, rows)
        for name in sorted({c for r, c in summaries if r == rows}, key=lambda c: order.get(c, 99)):
            s = summaries[(rows, name)]
            if not s.n:
                lines.append(f"| {_rows(rows)} | {name} | failed ({s.failed}) |" + " |" * 12)
                continue
            rerun = again.get((rows, name))
            lines.append(
                "| "
                + " | ".join(
                    [
                        _rows(rows),
                        name,
                        f"{s.rate:,.0f}",
                        _ratio(core.rate, s.rate) if core and core.n else "-",
                        f"{s.rate / ceiling:.0%}" if ceiling and name not in CEILINGS else "-",
                        f"{s.work_s:.2f} ({s.work_min:.2f}–{s.work_max:.2f})",
                        f"{s.cpu_s:.2f}",
                        f"{s.wall_s:.2f}",
                        f"{s.rss_mb:.0f}",
                        _ratio(s.rss_mb, core.rss_mb) if core and core.n else "-",
                        f"{s.requests:.0f}",
                        f"{s.bytes_down / 1e6:.2f}",
                        f"{rerun['requests']}" if rerun and rerun["ok"] else "-",
                        f"{rerun['bytes_down'] / 1e6:.3f}" if rerun and rerun["ok"] else "-",
                        _fidelity(s.wrong),
                    ]
                )
                + " |"
            )
    return "\n".join(lines)


def _ceiling(summaries: dict[tuple[int, str], Summary], rows: int) -> float | None:
    rates = [summaries[(rows, c)].rate for c in CEILINGS if (rows, c) in summaries]
    rates = [r for r in rates if r]
    return min(rates) if len(rates) == len(CEILINGS) else None


def targets(data: dict[str, Any]) -> list[str]:
    """Each target of issue 6 with the figure that decides it (largest size measured)."""
    summaries = summarise(data["runs"])
    again = reruns(data["runs"])
    big = max(data["rows"])
    at = f"at {_rows(big)} rows"
    core = summaries.get((big, "core"))
    if core is None or not core.n:
        return [f"- core did not run {at}; no targets judged"]
    out = []

    peers = [summaries[(big, p)] for p in PEERS if (big, p) in summaries and summaries[(big, p)].n]
    if peers:
        best = max(peers, key=lambda s: s.rate)
        ratio = core.rate / best.rate
        cpu = f"; CPU seconds {best.cpu_s / core.cpu_s:.2f}x" if core.cpu_s and best.cpu_s else ""
        out.append(
            _verdict(
                ratio >= 2,
                f"throughput ≥ 2x the faster peer {at}: core {core.rate:,.0f} rows/s vs "
                f"{best.contender} {best.rate:,.0f} rows/s = {ratio:.2f}x{cpu}",
            )
        )
        exact = [p for p in peers if p.wrong == {}]
        if best.wrong and exact:
            fair = max(exact, key=lambda s: s.rate)
            out.append(
                f"  - {best.contender} stores wrong values ({_fidelity(best.wrong)} of ~500 "
                f"sampled rows); against the faster peer that stores the values exactly, "
                f"{fair.contender} ({fair.rate:,.0f} rows/s): {core.rate / fair.rate:.2f}x"
            )
    ceiling = _ceiling(summaries, big)
    if ceiling:
        share = core.rate / ceiling
        which = min((summaries[(big, c)] for c in CEILINGS), key=lambda s: s.rate).contender
        out.append(
            _verdict(
                share >= 0.6,
                f"≥ 60% of min(fetch-only, load-only) {at}: {share:.0%} of {which} "
                f"({ceiling:,.0f} rows/s)",
            )
        )
    out.append(_verdict(core.rss_mb < 300, f"peak RSS < 300 MB {at}: core {core.rss_mb:.0f} MB"))
    small = summaries.get((100_000, "core"))
    if small and small.n and big > 100_000:
        growth = core.rss_mb / small.rss_mb - 1
        out.append(
            _verdict(
                growth <= 0.25,
                f"RSS flat within 25% from 100k to {_rows(big)}: {small.rss_mb:.0f} -> "
                f"{core.rss_mb:.0f} MB ({growth:+.0%})",
            )
        )
    if peers:
        lightest = min(peers, key=lambda s: s.rss_mb)
        share = core.rss_mb / lightest.rss_mb
        out.append(
            _verdict(
                share <= 0.25,
                f"RSS ≤ 1/4 of the peers' {at}: core {core.rss_mb:.0f} MB = {share:.0%} of the "
                f"lightest peer ({lightest.contender}, {lightest.rss_mb:.0f} MB)",
            )
        )
    flow = summaries.get((big, "flow"))
    if flow and flow.n:
        slower = flow.work_s / core.work_s - 1
        out.append(
            _verdict(
                slower <= 0.10,
                f"flow within 10% of core once the server is up {at}: flow {flow.work_s:.2f}s "
                f"vs core {core.work_s:.2f}s of work ({slower:+.0%}); wall {flow.wall_s:.2f}s "
                f"vs {core.wall_s:.2f}s",
            )
        )
    else:
        out.append("- [ ] flow within 10% of core: **not measured** (no flow contender ran)")
    rerun = again.get((big, "core"))
    if rerun and rerun["ok"]:
        result_bytes = sum(rerun["bytes_by_kind"].get(k, 0) for k in ("results", "results_csv"))
        probe = rerun["bytes_by_kind"].get("latest", 0)
        out.append(
            _verdict(
                result_bytes == 0,
                f"zero result-page bytes on a rerun of an unchanged execution {at}: "
                f"{result_bytes} bytes of result pages; {rerun['requests']} request(s), "
                f"{probe} bytes of latest-result probe (limit=1)",
            )
        )
    return out


def _verdict(ok: bool, text: str) -> str:
    return f"- [{'x' if ok else ' '}] {'met' if ok else 'NOT met'}: {text}"


def render(data: dict[str, Any]) -> str:
    env = data["environment"]
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v)
    parts = [
        f"Benchmark {env['date']}, commit {env['commit']}: {env['cores']} cores, "
        f"{env['ram_gib']} GiB RAM ({env['cpu']}), Python {env['python']}, "
        f"SQLite {env['sqlite']}; {versions}.",
        f"Command: `{data['command']}`; {data['repeat']} repetition(s), median shown; "
        f"{data['page_rows']:,} rows per page; wrong values: of about 500 sampled rows, how "
        "many a contender stored differently from the source (uint256 digits, NULLs, "
        "doubles, booleans); "
        + (
            f"every API response delayed {data['latency_ms']:g} ms."
            if data.get("latency_ms")
            else "emulator on loopback, no added latency."
        ),
    ]
    if data.get("prefect_server_startup_s") is not None:
        parts.append(
            f"Prefect server start-up (once, not in any row): "
            f"{data['prefect_server_startup_s']:.1f}s."
        )
    parts += [f"Note: {n}" for n in data.get("notes", [])]
    parts += ["", table(data), "", "Targets (issue 6):", *targets(data)]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    for path in args:
        print(render(json.loads(Path(path).read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
