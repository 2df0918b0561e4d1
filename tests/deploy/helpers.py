"""Reading the deployment files, and rendering a flow-run Job the way the worker does."""

from __future__ import annotations

import asyncio
import copy
import json
import re
import uuid
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOYMENTS = ROOT / "deployments"
TEMPLATE = DEPLOYMENTS / "k8s-base-job-template.json"
K8S_DIR = DEPLOYMENTS / "k8s"
WORKER_VALUES = DEPLOYMENTS / "helm" / "prefect-worker-values.yaml"
# The oldest Kubernetes minor we claim to support, and the newest schemas bundled.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())


def prefect_yaml() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    return data


def deployment(name: str) -> dict[str, Any]:
    (found,) = [d for d in prefect_yaml()["deployments"] if d["name"] == name]
    return dict(found)


def base_job_template() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(TEMPLATE.read_text())
    return data


def k8s_manifests() -> list[tuple[str, dict[str, Any]]]:
    """Every document under deployments/k8s/, including the ``.example`` ones."""
    found = []
    for path in sorted(K8S_DIR.iterdir()):
        if re.search(r"\.ya?ml(\.example)?$", path.name):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc:
                    found.append((path.name, doc))
    return found


def manifest(kind: str) -> dict[str, Any]:
    (found,) = [doc for _, doc in k8s_manifests() if doc["kind"] == kind]
    return found


def with_env_templates(value: Any, env: dict[str, str]) -> Any:
    """``{{ $NAME }}`` replaced as ``prefect deploy`` does with the deploying environment."""
    text = json.dumps(value)
    for name, replacement in env.items():
        text = text.replace(f"{{{{ ${name} }}}}", replacement)
    return json.loads(text)


class _NoAPI:
    """Stands in for the API client: rendering our template must not need the server."""


def render_job(
    template: dict[str, Any],
    job_variables: dict[str, Any],
    *,
    client: Any = None,
    flow_run: Any = None,
    deployment: Any = None,
    flow: Any = None,
    work_pool: Any = None,
) -> dict[str, Any]:
    """The Job manifest prefect-kubernetes's own configuration class builds for a run."""
    from prefect.client.schemas.objects import Flow, FlowRun
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    async def build() -> dict[str, Any]:
        config = await KubernetesWorkerJobConfiguration.from_template_and_values(
            template, job_variables, client=client or _NoAPI()
        )
        run = flow_run or FlowRun(id=uuid.uuid4(), name="brisk-otter", flow_id=uuid.uuid4())
        config.prepare_for_flow_run(
            run, deployment=deployment, flow=flow or Flow(name="onchain"), work_pool=work_pool
        )
        return dict(config.job_manifest)

    return asyncio.run(build())


def validate_strict(doc: dict[str, Any]) -> None:
    """kubernetes-validate, strict, on every version we support.

    Prefect Jobs carry ``generateName`` and no ``name``, on which kubernetes-validate
    crashes (KeyError 'name'), so a copy gets a placeholder name first.
    """
    doc = copy.deepcopy(doc)
    doc.setdefault("metadata", {}).setdefault("name", "placeholder-name")
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)


def container(job: dict[str, Any]) -> dict[str, Any]:
    (only,) = job["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env_entry(job: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [e for e in container(job)["env"] if e["name"] == name]
    return dict(found)
