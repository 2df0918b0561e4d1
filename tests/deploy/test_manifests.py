"""The Kubernetes side validates offline, and its files agree with each other (issue 5)."""

from __future__ import annotations

import posixpath
from typing import Any

import kubernetes_validate
import pytest
import yaml

from downstream.spec import load_spec, parse_spec

from .helpers import (
    DEPLOYMENTS,
    WORKER_VALUES,
    base_job_template,
    container,
    deployment,
    env_entry,
    k8s_manifests,
    manifest,
    prefect_yaml,
    render_job,
    validate_strict,
    with_env_templates,
)

IMAGE = "registry.example.com/downstream:0123abc"


@pytest.fixture(scope="module")
def job() -> dict[str, Any]:
    """The Job the worker would create for an onchain-k8s run."""
    variables = with_env_templates(
        deployment("onchain-k8s")["work_pool"]["job_variables"], {"IMAGE": IMAGE}
    )
    return render_job(base_job_template(), variables)


@pytest.mark.parametrize(
    "name,doc", k8s_manifests(), ids=[f"{n}:{d['kind']}" for n, d in k8s_manifests()]
)
def test_every_manifest_validates_strictly(name: str, doc: dict[str, Any]) -> None:
    validate_strict(doc)


def test_the_manifests_are_the_ones_the_readme_applies() -> None:
    kinds = sorted(doc["kind"] for _, doc in k8s_manifests())
    assert kinds == ["Namespace", "PersistentVolumeClaim", "Secret"]


def test_the_strict_check_does_catch_a_misplaced_field() -> None:
    bad = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x"}, "spex": {}}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_strict(bad)


def test_the_rendered_job_validates_strictly(job: dict[str, Any]) -> None:
    validate_strict(job)
    assert job["spec"]["parallelism"] == job["spec"]["completions"] == 1
    pod = job["spec"]["template"]["spec"]
    assert "parallelism" not in pod and "completions" not in pod  # Prefect's default has them


def test_the_rendered_job_runs_our_image_in_our_namespace(job: dict[str, Any]) -> None:
    assert container(job)["image"] == IMAGE
    assert container(job)["args"] == ["prefect", "flow-run", "execute"]
    assert job["metadata"]["namespace"] == manifest("Namespace")["metadata"]["name"]
    resources = container(job)["resources"]
    assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}


def test_the_pvc_is_mounted_where_bronze_db_path_points(job: dict[str, Any]) -> None:
    db_path = env_entry(job, "BRONZE_DB_PATH")["value"]
    pod = job["spec"]["template"]["spec"]
    (volume,) = pod["volumes"]
    assert (
        volume["persistentVolumeClaim"]["claimName"]
        == (manifest("PersistentVolumeClaim")["metadata"]["name"])
    )
    (mount,) = container(job)["volumeMounts"]
    assert mount["name"] == volume["name"]
    assert posixpath.dirname(db_path) == mount["mountPath"]
    assert not mount.get("readOnly")
    # The image runs as this UID; fsGroup makes the volume writable for it.
    assert pod["securityContext"]["runAsUser"] == pod["securityContext"]["fsGroup"] == 10001


def test_the_dune_key_comes_from_the_secret_never_a_literal(job: dict[str, Any]) -> None:
    entry = env_entry(job, "DUNE_API_KEY")
    secret = manifest("Secret")
    assert "value" not in entry
    ref = entry["valueFrom"]["secretKeyRef"]
    assert ref["name"] == secret["metadata"]["name"]
    assert list(secret["stringData"]) == [ref["key"]]
    assert secret["metadata"]["namespace"] == job["metadata"]["namespace"]


def test_no_literal_key_anywhere_in_the_deployment_files() -> None:
    for path in [DEPLOYMENTS / "k8s-base-job-template.json", DEPLOYMENTS.parent / "prefect.yaml"]:
        assert "DUNE_API_KEY:" not in path.read_text()
        assert '"DUNE_API_KEY": "' not in path.read_text()


def test_the_deployment_parameters_are_the_example_spec() -> None:
    example = load_spec(DEPLOYMENTS / "queries.yaml")
    for name in ("onchain-k8s", "onchain-local"):
        given = parse_spec({"queries": deployment(name)["parameters"]["queries"]}, source=name)
        assert given == example


def test_the_helm_values_point_at_our_pool_namespace_and_versions() -> None:
    values = yaml.safe_load(WORKER_VALUES.read_text())["worker"]
    namespace = manifest("Namespace")["metadata"]["name"]
    assert values["apiConfig"] == "selfHostedServer"
    assert values["config"]["workPool"] == deployment("onchain-k8s")["work_pool"]["name"]
    assert values["config"]["jobNamespace"] == namespace
    assert f".{namespace}.svc" in values["selfHostedServerApiConfig"]["apiUrl"]
    assert values["image"]["prefectTag"].startswith(prefect_yaml()["prefect-version"] + "-")
    assert values["config"]["installPolicy"] == "never"
    assert "baseJobTemplate" not in values["config"]  # the bootstrap owns the template
