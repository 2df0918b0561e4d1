"""Run the contenders side by side and record what each one cost.

For each result size the emulator is started once in its own process (synthetic rows, Dune's
32,000-row page cap and 250k-datapoint cap) and its page cache is warmed, so every contender
reads pre-encoded pages. Then, ``--repeat`` times and in a rotating order, each contender
runs in a fresh subprocess into a fresh database. The parent records wall time and peak RSS
(``wait4``), the child its own work time (imports and set-up excluded), the emulator the
requests and bytes. After the first repetition each loader runs once more on the same
database and an unchanged result: the rerun series.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import IO, Any

import httpx

from bench import report
from bench.contenders import API_KEY, CONTENDERS, PAGE_ROWS, TABLE

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
QUERY_ID = 9_100_001
DEFAULT_ROWS = (10_000, 100_000, 1_000_000)
SMOKE_ROWS = 20_000
# The order rotates every repetition, so drift on a shared machine hits everyone alike.
DEFAULT_CONTENDERS = (
    "core",
    "flow",
    "dune-client",
    "dune-client-csv",
    "dlt",
    "fetch-only",
    "load-only",
)
CEILINGS = frozenset({"fetch-only", "load-only"})
# Contenders that keep state in their database and can be asked to run again.
RERUNNABLE = frozenset({"core", "flow", "dune-client", "dune-client-csv", "dlt"})


@dataclass
class Run:
    """One contender process: what the parent, the child and the emulator saw."""

    contender: str
    rows: int
    repetition: int
    rerun: bool
    ok: bool
    exit_code: int
    wall_s: float
    work_s: float | None
    work_cpu_s: float | None
    prepare_s: float | None
    cpu_s: float
    peak_rss_mb: float
    requests: int
    bytes_down: int
    requests_by_kind: dict[str, int]
    bytes_by_kind: dict[str, int]
    rows_reported: int | None
    rows_in_db: int | None
    wrong_values: dict[str, int] | None = None
    error: str | None = None
    child: dict[str, Any] = field(default_factory=dict)


class Emulator:
    """``python -m downstream.emulator`` in its own process, driven over ``/_emulator``."""

    def __init__(self, rows: int, log: IO[str], page_cache_mb: int) -> None:
        cmd = [
            sys.executable,
            "-m",
            "downstream.emulator",
            "--port",
            "0",
            "--synthetic-rows",
            str(rows),
            "--synthetic-query-id",
            str(QUERY_ID),
            "--api-key",
            API_KEY,
            "--page-cache-mb",
            str(page_cache_mb),
        ]
        self.process = subprocess.Popen(
            cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("Dune emulator listening on "):
            self.stop()
            raise RuntimeError(f"the emulator did not start: {line!r}")
        self.base_url = line.split()[-1]
        self.http = httpx.Client(
            base_url=self.base_url, headers={"X-Dune-Api-Key": API_KEY}, timeout=120
        )

    def warm(self, rows: int) -> None:
        """Encode every page once (JSON and CSV) so no contender pays for generating it."""
        latest = self.http.get(f"/api/v1/query/{QUERY_ID}/results", params={"limit": 1})
        execution_id = latest.raise_for_status().json()["execution_id"]
        for offset in range(0, rows, PAGE_ROWS):
            for suffix in ("", "/csv"):
                self.http.get(
                    f"/api/v1/execution/{execution_id}/results{suffix}",
                    params={"limit": PAGE_ROWS, "offset": offset},
                ).raise_for_status()

    def add_latency(self, seconds: float) -> None:
        """Answer every API request ``seconds`` late, like a server across the internet."""
        rule = {"path": "^/api/", "action": "slow", "delay": seconds, "times": 10**9}
        self.http.post("/_emulator/faults", json=rule).raise_for_status()

    def reset_stats(self) -> None:
        self.http.post("/_emulator/stats/reset").raise_for_status()

    def stats(self) -> dict[str, Any]:
        data: dict[str, Any] = self.http.get("/_emulator/stats").raise_for_status().json()
        return data

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self.http.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class PrefectServer:
    """``prefect server start`` once for the flow contender; its start-up is timed apart."""

    def __init__(self, home: Path, log: IO[str], timeout: float = 180) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.api_url = f"http://127.0.0.1:{port}/api"
        self.env = {
            **os.environ,
            "PREFECT_HOME": str(home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "DO_NOT_TRACK": "1",
        }
        prefect = Path(sys.executable).with_name("prefect")
        t0 = time.perf_counter()
        self.process = subprocess.Popen(
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        deadline = t0 + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError("prefect server exited during start-up (see the log)")
            try:
                if httpx.get(f"{self.api_url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.perf_counter() > deadline:
                self.stop()
                raise RuntimeError(f"prefect server not healthy after {timeout:.0f}s")
            time.sleep(0.25)
        self.startup_s = time.perf_counter() - t0

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def run_contender(
    name: str,
    emulator: Emulator,
    rows: int,
    workdir: Path,
    *,
    repetition: int,
    rerun: bool,
    env: dict[str, str],
    timeout: float,
) -> Run:
    """One child process; waits with ``wait4`` to get the child's own peak RSS."""
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "bronze.db"
    result_file = workdir / f"result{'-rerun' if rerun else ''}.json"
    result_file.unlink(missing_ok=True)
    cmd = [
        sys.executable,
        "-m",
        "bench.contenders",
        name,
        "--base-url",
        emulator.base_url,
        "--query-id",
        str(QUERY_ID),
        "--rows",
        str(rows),
        "--db",
        str(db),
        "--workdir",
        str(workdir),
        "--result",
        str(result_file),
    ]
    emulator.reset_stats()
    log_path = workdir / f"log{'-rerun' if rerun else ''}.txt"
    with log_path.open("w") as log:
        t0 = time.perf_counter()
        process = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
        timer = threading.Timer(timeout, process.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(process.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - t0
    process.returncode = os.waitstatus_to_exitcode(status)
    stats = emulator.stats()
    child: dict[str, Any] = {}
    if result_file.exists():
        child = json.loads(result_file.read_text())
    ok = process.returncode == 0 and bool(child)
    error = None
    if not ok:
        tail = log_path.read_text(errors="replace").strip().splitlines()[-3:]
        error = f"exit {process.returncode}: " + " | ".join(tail)
    bytes_by_kind = {k: int(v) for k, v in stats["response_bytes_by_kind"].items()}
    return Run(
        contender=name,
        rows=rows,
        repetition=repetition,
        rerun=rerun,
        ok=ok,
        exit_code=process.returncode,
        wall_s=wall,
        work_s=child.get("work_s"),
        work_cpu_s=child.get("work_cpu_s"),
        prepare_s=child.get("prepare_s"),
        cpu_s=usage.ru_utime + usage.ru_stime,
        peak_rss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
        requests=int(stats["requests_total"]),
        bytes_down=sum(bytes_by_kind.values()),
        requests_by_kind={k: int(v) for k, v in stats["requests_by_kind"].items()},
        bytes_by_kind=bytes_by_kind,
        rows_reported=child.get("rows"),
        rows_in_db=_rows_in_db(db) if name != "fetch-only" else None,
        wrong_values=fidelity(db, rows) if ok and name != "fetch-only" else None,
        error=error,
        child={
            k: v for k, v in child.items() if k not in ("work_s", "work_cpu_s", "prepare_s", "rows")
        },
    )


def _rows_in_db(db: Path) -> int | None:
    if not db.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(db)) as conn:
            return int(conn.execute(f'SELECT count(*) FROM "{TABLE}"').fetchone()[0])
    except sqlite3.Error:
        return None


# Columns whose stored value can be checked against the source whatever a tool's typing.
FIDELITY_COLUMNS = ("amount_raw", "amount_usd", "symbol", "success")
FIDELITY_SAMPLE = 500


def fidelity(db: Path, rows: int) -> dict[str, int] | None:
    """Wrong values per column in a sample of rows: exact uint256 digits, real NULLs.

    Speed figures mean little if a contender stores ``5.97e+17`` for a uint256 or the text
    ``<nil>`` for a NULL, so each load is checked against the generated source rows.
    """
    from downstream.emulator.synthetic import SyntheticRows

    source = SyntheticRows(rows)
    step = max(1, rows // FIDELITY_SAMPLE)
    wrong = dict.fromkeys(FIDELITY_COLUMNS, 0)
    try:
        with contextlib.closing(sqlite3.connect(db)) as conn:
            for i in range(0, rows, step):
                (expected,) = source.slice(i, i + 1)
                found = conn.execute(
                    f'SELECT {", ".join(FIDELITY_COLUMNS)} FROM "{TABLE}" WHERE block_number = ?',
                    [expected["block_number"]],
                ).fetchone()
                for column, value in zip(FIDELITY_COLUMNS, found or (), strict=False):
                    if not _same(expected[column], value):
                        wrong[column] += 1
                if found is None:
                    for column in FIDELITY_COLUMNS:
                        wrong[column] += 1
    except sqlite3.Error:
        return None
    return {k: v for k, v in wrong.items() if v}


def _same(expected: Any, stored: Any) -> bool:
    if expected is None or stored is None:
        return expected is None and stored is None
    if isinstance(expected, bool):
        return stored in (0, 1) and bool(stored) is expected
    if isinstance(expected, str):
        return isinstance(stored, str) and stored == expected
    return isinstance(stored, int | float) and float(stored) == float(expected)


def parse_rows(text: str) -> list[int]:
    """``10k,100k,1M`` -> [10000, 100000, 1000000]."""
    out = []
    for part in text.split(","):
        part = part.strip().lower().replace("_", "")
        scale = {"k": 1_000, "m": 1_000_000}.get(part[-1:], 1)
        out.append(int(float(part.rstrip("km")) * scale))
    return out


def environment() -> dict[str, Any]:
    """The machine and versions the figures belong to."""
    mem_kb = 0
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions: dict[str, str | None] = {}
    for package in (
        "downstream",
        "httpx",
        "orjson",
        "pandas",
        "sqlite-utils",
        "prefect",
        "dune-client",
        "dlt",
        "sqlalchemy",
        "requests",
    ):
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = None
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "ram_gib": round(mem_kb / 1024 / 1024, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "commit": commit,
        "versions": versions,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./run bench",
        description="Benchmark Downstream against dune-client, dlt and the ceilings.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--rows", default="10k,100k,1M", help="result sizes, comma separated (k, M suffixes)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per contender")
    parser.add_argument(
        "--contenders",
        default=",".join(DEFAULT_CONTENDERS),
        help=f"comma separated, from: {', '.join(CONTENDERS)}",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"CI smoke run: {SMOKE_ROWS} rows, one repetition (speed is not judged)",
    )
    parser.add_argument("--no-rerun", action="store_true", help="skip the rerun series")
    parser.add_argument("--out", type=Path, help="JSON output (default bench/results/<date>.json)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per contender run")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--page-cache-mb", type=int, default=1024, help="emulator page cache")
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=0,
        help="delay every API response this long (the emulator is on loopback, Dune is not)",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.rows, args.repeat = str(SMOKE_ROWS), 1
    args.rows = parse_rows(args.rows)
    args.contenders = [c.strip() for c in args.contenders.split(",") if c.strip()]
    unknown = [c for c in args.contenders if c not in CONTENDERS]
    if unknown:
        parser.error(f"unknown contender(s): {', '.join(unknown)}")
    return args


def flow_available() -> bool:
    return (ROOT / "flows" / "onchain.py").exists()


@contextlib.contextmanager
def _workspace(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="downstream-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"work directory kept: {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    contenders: list[str] = list(args.contenders)
    notes: list[str] = []
    if "flow" in contenders and not flow_available():
        contenders.remove("flow")
        notes.append("flow: skipped, flows/onchain.py is not in this checkout yet")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0"}
    runs: list[Run] = []
    server_startup_s: float | None = None
    started = time.perf_counter()
    with _workspace(args.keep) as work:
        server: PrefectServer | None = None
        log = (work / "services.log").open("w")
        try:
            if "flow" in contenders:
                print("starting prefect server ...", file=sys.stderr, flush=True)
                server = PrefectServer(work / "prefect", log)
                server_startup_s = server.startup_s
                print(f"prefect server up in {server_startup_s:.1f}s", file=sys.stderr)
            for rows in args.rows:
                runs += _scale(args, rows, contenders, work, env, server, log)
        finally:
            if server is not None:
                server.stop()
            log.close()
    data = {
        "environment": environment(),
        "command": " ".join(["./run", "bench", *(argv if argv is not None else sys.argv[1:])]),
        "rows": args.rows,
        "repeat": args.repeat,
        "contenders": contenders,
        "page_rows": PAGE_ROWS,
        "latency_ms": args.latency_ms,
        "prefect_server_startup_s": server_startup_s,
        "notes": notes,
        "elapsed_s": time.perf_counter() - started,
        "runs": [asdict(r) for r in runs],
    }
    out = args.out or RESULTS / f"bench-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(data, indent=1))
    print(report.render(data))
    print(f"\nraw figures: {out}")
    failed = [r for r in runs if not r.ok]
    for r in failed:
        print(f"FAILED {r.contender} {r.rows} rows (rerun={r.rerun}): {r.error}", file=sys.stderr)
    return 1 if failed else 0


def _scale(
    args: argparse.Namespace,
    rows: int,
    contenders: list[str],
    work: Path,
    env: dict[str, str],
    server: PrefectServer | None,
    log: IO[str],
) -> list[Run]:
    print(f"{rows:,} rows: starting the emulator", file=sys.stderr, flush=True)
    emulator = Emulator(rows, log, args.page_cache_mb)
    runs: list[Run] = []
    try:
        emulator.warm(rows)
        if args.latency_ms:
            emulator.add_latency(args.latency_ms / 1000)
        for rep in range(args.repeat):
            shift = rep % len(contenders)
            for name in contenders[shift:] + contenders[:shift]:
                child_env = server.env | env if (server and name == "flow") else env
                workdir = work / f"{rows}" / f"{name}-{rep}"
                run = run_contender(
                    name,
                    emulator,
                    rows,
                    workdir,
                    repetition=rep,
                    rerun=False,
                    env=child_env,
                    timeout=args.timeout,
                )
                runs.append(run)
                _progress(run)
                if rep == 0 and name in RERUNNABLE and not args.no_rerun and run.ok:
                    again = run_contender(
                        name,
                        emulator,
                        rows,
                        workdir,
                        repetition=rep,
                        rerun=True,
                        env=child_env,
                        timeout=args.timeout,
                    )
                    runs.append(again)
                    _progress(again)
                shutil.rmtree(workdir / "dlt", ignore_errors=True)
                if not args.keep:
                    (workdir / "bronze.db").unlink(missing_ok=True)
    finally:
        emulator.stop()
    return runs


def _progress(run: Run) -> None:
    what = "rerun" if run.rerun else f"rep {run.repetition + 1}"
    if not run.ok:
        print(f"  {run.contender:16} {what:6} FAILED: {run.error}", file=sys.stderr, flush=True)
        return
    rate = run.rows / run.work_s if run.work_s else 0.0
    print(
        f"  {run.contender:16} {what:6} work {run.work_s or 0:7.2f}s  "
        f"cpu {run.work_cpu_s or 0:6.2f}s  wall {run.wall_s:7.2f}s  "
        f"{rate:>10,.0f} rows/s  rss {run.peak_rss_mb:6.0f} MB  "
        f"{run.requests:3d} req  {run.bytes_down / 1e6:8.2f} MB",
        file=sys.stderr,
        flush=True,
    )
