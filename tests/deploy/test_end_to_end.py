"""The deployment path with real parts: server, bootstrap, deploy, run, worker (issue 5).

A real ``prefect server start`` on a free loopback port with its own PREFECT_HOME, the
bootstrap, ``prefect --no-prompt deploy --all``, then ``prefect deployment run
onchain/onchain-local`` picked up by ``prefect worker start --run-once`` on the process
pool, with the emulator as Dune. The run finds its key the way a laptop run would: in
the ``dune`` block the bootstrap saved (so it also paces through the ``dune-low`` and
``dune-high`` limits the bootstrap made, which are strict: missing ones fail the run).
"""

from __future__ import annotations

import importlib
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
from prefect.client.schemas.schedules import CronSchedule

from downstream.emulator import DuneEmulator, serve
from downstream.spec import load_spec

from .helpers import (
    DEPLOYMENTS,
    ROOT,
    container,
    env_entry,
    render_job,
    validate_strict,
)

# A hung step fails on its own bound first (server 120 s, worker 180 s); pytest-timeout's
# signal still unwinds through `started`, which stops every process this test began.
pytestmark = [pytest.mark.deployment, pytest.mark.timeout(480)]

BIN = Path(sys.executable).parent
KEY = "e2e-key-3b7c41d0"
IMAGE = "registry.example.com/downstream:e2e"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(home: Path, api_url: str) -> dict[str, str]:
    """This process's environment without any Prefect, Dune or Downstream settings."""
    prefixes = ("PREFECT_", "DUNE_", "BRONZE_", "DOWNSTREAM_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=api_url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


@contextmanager
def started(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process in its own group, always stopped: SIGTERM, then SIGINT (a worker ignores
    the first signal), then SIGKILL for anything of its group still alive."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield proc
        finally:
            for sig, grace in ((signal.SIGTERM, 5), (signal.SIGINT, 10)):
                if proc.poll() is not None:
                    break
                os.killpg(proc.pid, sig)
                with suppress(subprocess.TimeoutExpired):
                    proc.wait(grace)
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def run(args: list[str], env: dict[str, str]) -> str:
    """Run a command to completion; its stdout, or a failure showing all it printed."""
    result = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"{' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def wait_healthy(api_url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert server.poll() is None, f"prefect server exited:\n{log.read_text()[-3000:]}"
        try:
            if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise AssertionError(f"prefect server not healthy after 120 s:\n{log.read_text()[-3000:]}")


@pytest.fixture
def emulator_url() -> Iterator[str]:
    emulator = DuneEmulator.bundled()
    emulator.config.valid_keys = [KEY]
    emulator.set_script(1463956, [], "completed")  # done at the first poll
    with serve(emulator) as url:
        yield url


def test_deploy_then_run_on_a_process_worker(tmp_path: Path, emulator_url: str) -> None:
    steps: dict[str, float] = {}
    clock = time.monotonic()

    def step(name: str) -> None:
        nonlocal clock
        steps[name] = round(time.monotonic() - clock, 1)
        clock = time.monotonic()

    port = free_port()
    api_url = f"http://127.0.0.1:{port}/api"
    env = clean_env(tmp_path / "home", api_url)
    dune = {"DUNE_API_KEY": KEY, "DUNE_API_BASE_URL": emulator_url, "DUNE_API_PLAN": "none"}
    bootstrap = [sys.executable, str(DEPLOYMENTS / "bootstrap.py")]
    db = tmp_path / "bronze.db"
    with ExitStack() as stack, ThreadPoolExecutor(2) as pool:
        server_log = tmp_path / "server.log"
        server = stack.enter_context(
            started(
                [
                    str(BIN / "prefect"),
                    "server",
                    "start",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                {**env, "PREFECT_SERVER_UI_ENABLED": "false"},
                server_log,
            )
        )
        # The server takes most of the time (migrations); import what the checks need meanwhile.
        pool.submit(importlib.import_module, "prefect_kubernetes.worker")
        wait_healthy(api_url, server, server_log)
        step("server healthy")

        first = run(bootstrap, {**env, **dune})
        assert "work pool downstream-k8s (kubernetes): created" in first
        assert "work pool downstream-local (process): created" in first
        assert "global concurrency limit dune-low: created" in first
        assert "block 'dune' saved" in first
        step("bootstrap")

        deploy_env = {**env, "IMAGE": IMAGE, "PROJECT_DIR": str(ROOT)}
        run([str(BIN / "prefect"), "--no-prompt", "deploy", "--all"], deploy_env)
        step("deploy --all")

        # Check what was deployed while `prefect deployment run` starts up.
        checked = pool.submit(check_deployments, api_url)
        triggered = run(
            [
                *(str(BIN / "prefect"), "deployment", "run", "onchain/onchain-local"),
                *("--job-variable", f'env={{"BRONZE_DB_PATH": "{db}"}}'),
            ],
            env,
        )
        checked.result()
        match = re.search(r"UUID:\s*([0-9a-f-]{36})", triggered)
        assert match, triggered
        step("deployments checked, run created")

        worker_log = tmp_path / "worker.log"
        worker = stack.enter_context(
            started(
                [
                    str(BIN / "prefect"),
                    "worker",
                    "start",
                    "--pool",
                    "downstream-local",
                    "--run-once",
                ],
                env,
                worker_log,
            )
        )
        # Re-running the bootstrap is safe, even while a run uses what it manages.
        again = pool.submit(run, bootstrap, {**env, **dune})
        try:
            worker.wait(180)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker --run-once still running after 180 s:\n{worker_log.read_text()}")
        assert worker.returncode == 0, worker_log.read_text()[-5000:]
        step("worker --run-once")

        state = flow_run_state(api_url, match.group(1))
        assert state.type.value == "COMPLETED", f"{state!r}\n{worker_log.read_text()[-5000:]}"
        with sqlite3.connect(db) as conn:
            rows = conn.execute("SELECT count(*) FROM eth_net_emission").fetchone()[0]
            metrics = conn.execute("SELECT count(*) FROM recorded_raw_metric").fetchone()[0]
        assert rows == metrics == 1538

        second = again.result()
        assert "work pool downstream-k8s (kubernetes): template updated" in second
        assert "work pool downstream-local (process): exists" in second
        assert "global concurrency limit dune-high: updated" in second
        step("results checked")
    step("stopped")
    print(f"end-to-end steps (s): {steps}")


def check_deployments(api_url: str) -> None:
    """Both deployments as prefect.yaml says, and the k8s one renders a valid Job."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    expected = [q.model_dump(mode="json") for q in load_spec(DEPLOYMENTS / "queries.yaml").queries]
    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        k8s = client.read_deployment_by_name("onchain/onchain-k8s")
        local = client.read_deployment_by_name("onchain/onchain-local")
        pool = client.read_work_pool("downstream-k8s")
        flow = client.read_flow(k8s.flow_id)
        limits = {c.name: c for c in client.read_global_concurrency_limits()}

    assert k8s.work_pool_name == "downstream-k8s"
    assert local.work_pool_name == "downstream-local"
    (k8s_schedule,) = k8s.schedules
    assert isinstance(k8s_schedule.schedule, CronSchedule)
    assert (k8s_schedule.schedule.cron, k8s_schedule.schedule.timezone) == ("0 6 * * *", "UTC")
    assert k8s_schedule.active
    (local_schedule,) = local.schedules
    assert not local_schedule.active
    for dep in (k8s, local):
        assert dep.entrypoint == "flows/onchain.py:onchain"
        assert dep.parameters["queries"] == expected
        assert dep.global_concurrency_limit is not None
        assert dep.global_concurrency_limit.limit == 1
    assert k8s.pull_steps == [
        {
            "prefect.deployments.steps.set_working_directory": {
                "directory": "/opt/prefect/downstream"
            }
        }
    ]
    assert local.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}
    ]
    assert k8s.job_variables is not None and k8s.job_variables["image"] == IMAGE
    assert limits["dune-low"].slot_decay_per_second > 0
    assert limits["dune-high"].slot_decay_per_second > 0

    from prefect.client.schemas.objects import FlowRun

    run = FlowRun(name="render-check", flow_id=k8s.flow_id, deployment_id=k8s.id)
    job = render_job(
        pool.base_job_template,
        k8s.job_variables,
        flow_run=run,
        deployment=k8s,
        flow=flow,
        work_pool=pool,
    )
    validate_strict(job)
    assert container(job)["image"] == IMAGE
    assert env_entry(job, "DUNE_API_KEY")["valueFrom"]["secretKeyRef"]["name"] == "dune-api"
    assert (
        os.path.dirname(env_entry(job, "BRONZE_DB_PATH")["value"])
        == (container(job)["volumeMounts"][0]["mountPath"])
    )


def flow_run_state(api_url: str, flow_run_id: str) -> Any:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        return client.read_flow_run(UUID(flow_run_id)).state
