"""Smoke test of the `control_plane` fixture: the API server serves, the controllers act, RBAC bites."""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

pytestmark = pytest.mark.k8s

VERSIONS_ENV = Path(__file__).resolve().parents[2] / "hack" / "tools" / "versions.env"
ControlPlane = Any  # tests/k8s/conftest.py:ControlPlane (conftest modules are not importable)

T = TypeVar("T")


def eventually(what: str, probe: Callable[[], T | None], timeout: float = 90.0) -> T:
    """Poll until `probe` returns something truthy; controllers act asynchronously."""
    deadline = time.monotonic() + timeout
    while not (result := probe()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.5)
    return result


@pytest.fixture
def api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    with control_plane.api_client() as api_client:
        yield api_client


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def test_binaries_report_the_pinned_version(control_plane: ControlPlane) -> None:
    pinned = dict(line.split("=", 1) for line in VERSIONS_ENV.read_text().splitlines()
                  if line and not line.startswith("#"))
    out = subprocess.run(["kubectl", "version", "-o", "json"], env=control_plane.env,
                         capture_output=True, text=True, timeout=30, check=True).stdout
    versions = json.loads(out)
    assert versions["serverVersion"]["gitVersion"] == pinned["KUBE_VERSION"]
    assert versions["clientVersion"]["gitVersion"] == pinned["KUBE_VERSION"]


def test_deployment_controller_creates_replicaset_and_pod(api: client.ApiClient, namespace: str) -> None:
    labels = {"app": "smoke"}
    container = client.V1Container(name="c", image="registry.invalid/never-pulled:1")  # no kubelet
    deployment = client.AppsV1Api(api).create_namespaced_deployment(namespace, client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=1,
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(metadata=client.V1ObjectMeta(labels=labels),
                                              spec=client.V1PodSpec(containers=[container])),
        ),
    ))

    replica_set = eventually("ReplicaSet owned by the Deployment", lambda: next(
        (rs for rs in client.AppsV1Api(api).list_namespaced_replica_set(namespace).items
         if any(o.uid == deployment.metadata.uid for o in rs.metadata.owner_references or [])), None))
    pod = eventually("Pod owned by the ReplicaSet", lambda: next(
        (p for p in client.CoreV1Api(api).list_namespaced_pod(namespace).items
         if any(o.uid == replica_set.metadata.uid for o in p.metadata.owner_references or [])), None))
    assert pod.spec.containers[0].image == container.image
    assert pod.status.phase == "Pending"  # nothing schedules or runs it


def test_job_controller_creates_pod(api: client.ApiClient, namespace: str) -> None:
    job = client.BatchV1Api(api).create_namespaced_job(namespace, client.V1Job(
        metadata=client.V1ObjectMeta(name="once"),
        spec=client.V1JobSpec(template=client.V1PodTemplateSpec(spec=client.V1PodSpec(
            restart_policy="Never",
            containers=[client.V1Container(name="c", image="registry.invalid/never-pulled:1")]))),
    ))
    eventually("Pod owned by the Job", lambda: [
        p for p in client.CoreV1Api(api).list_namespaced_pod(namespace).items
        if any(o.uid == job.metadata.uid for o in p.metadata.owner_references or [])])


def test_garbage_collector_deletes_owned_objects(api: client.ApiClient, namespace: str) -> None:
    core = client.CoreV1Api(api)
    owner = core.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="owner")))
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(
        name="child",
        owner_references=[client.V1OwnerReference(api_version="v1", kind="ConfigMap",
                                                  name="owner", uid=owner.metadata.uid)],
    )))
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="bystander")))

    assert core.read_namespaced_config_map("child", namespace).metadata.owner_references[0].uid == owner.metadata.uid

    core.delete_namespaced_config_map("owner", namespace)

    def child_gone() -> bool:
        try:
            core.read_namespaced_config_map("child", namespace)
        except ApiException as e:
            return e.status == 404
        return False

    eventually("garbage collection of the owned ConfigMap", child_gone)
    assert core.read_namespaced_config_map("bystander", namespace).metadata.name == "bystander"


def test_service_account_token_is_bound_by_rbac(
    control_plane: ControlPlane, api: client.ApiClient, namespace: str
) -> None:
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(namespace, client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="reader")))
    kubeconfig = control_plane.token_kubeconfig(namespace, "reader")

    with control_plane.api_client(kubeconfig) as sa_api:
        # The token authenticates as the ServiceAccount (a 403 for system:anonymous would prove nothing).
        review = client.AuthenticationV1Api(sa_api).create_self_subject_review(client.V1SelfSubjectReview())
        assert review.status.user_info.username == f"system:serviceaccount:{namespace}:reader"

        sa_core = client.CoreV1Api(sa_api)
        with pytest.raises(ApiException) as denied:
            sa_core.list_namespaced_config_map(namespace)
        assert denied.value.status == 403

        rbac.create_namespaced_role(namespace, client.V1Role(
            metadata=client.V1ObjectMeta(name="read-configmaps"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["configmaps"], verbs=["list"])]))
        rbac.create_namespaced_role_binding(namespace, client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="reader-reads-configmaps"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="read-configmaps"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="reader", namespace=namespace)]))
        # Granted now; still denied everything else.
        eventually("RBAC grant taking effect", lambda: _can_list_config_maps(sa_core, namespace), timeout=30)
        with pytest.raises(ApiException) as still_denied:
            sa_core.list_namespaced_secret(namespace)
        assert still_denied.value.status == 403


def _can_list_config_maps(core: client.CoreV1Api, namespace: str) -> bool:
    try:
        core.list_namespaced_config_map(namespace)
    except ApiException as e:
        if e.status == 403:
            return False
        raise
    return True
