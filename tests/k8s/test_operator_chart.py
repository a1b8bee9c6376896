"""The Helm chart: lints strictly, renders valid Kubernetes objects, least privilege, restricted pods."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from cobstack_operator import crdgen

pytestmark = pytest.mark.k8s

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "cobstack"
HELM = REPO / ".tools" / "bin" / "helm"
KUBE_VERSION = "1.35.0"
VARIANTS = {
    "defaults": [],
    "sample": ["--set", "sample.enabled=true"],
    "namespaced": ["--set", "operator.watchNamespaces={team-a,team-b}", "--set", "serviceAccount.name=cob"],
}


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    if not os.access(HELM, os.X_OK):
        pytest.fail(f"helm missing: run `make tools` ({HELM} not built)")
    return subprocess.run([str(HELM), *args], capture_output=True, text=True, timeout=60)


def template(*flags: str) -> list[dict[str, Any]]:
    out = helm("template", "cob", str(CHART), "--namespace", "cobstack-system", *flags)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.mark.parametrize("variant", VARIANTS)
def test_helm_lint_strict(variant):
    out = helm("lint", "--strict", str(CHART), *VARIANTS[variant])
    assert out.returncode == 0, out.stdout + out.stderr


def test_values_schema_rejects_unknown_values():
    out = helm("lint", "--strict", str(CHART), "--set", "operator.replicas=2")
    assert out.returncode != 0 and "additional properties" in (out.stdout + out.stderr).lower()


@pytest.mark.parametrize("variant", VARIANTS)
def test_templates_are_valid_kubernetes_objects(variant):
    docs = template(*VARIANTS[variant])
    crd_schema = crdgen.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for doc in docs:
        if doc["kind"] == "CobStack":  # not in the Kubernetes schemas: check it against our CRD
            jsonschema.Draft4Validator(crd_schema).validate(doc)
        else:
            kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    kinds = sorted(d["kind"] for d in docs)
    assert ("CobStack" in kinds) == (variant == "sample")


def test_operator_deployment_is_single_recreate_and_restricted():
    (dep,) = [d for d in template() if d["kind"] == "Deployment"]
    assert dep["spec"]["replicas"] == 1 and dep["spec"]["strategy"] == {"type": "Recreate"}
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (c,) = pod["containers"]
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "runAsNonRoot": True, "capabilities": {"drop": ["ALL"]},
                                    "seccompProfile": {"type": "RuntimeDefault"}}
    assert c["command"] == ["cobstack-operator"] and "--all-namespaces" in c["args"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"


def test_rbac_is_least_privilege():
    (role,) = [d for d in template() if d["kind"] == "ClusterRole"]
    grants = {(g, r): set(rule["verbs"]) for rule in role["rules"]
              for g in rule["apiGroups"] for r in rule["resources"]}
    assert all("*" not in verbs for verbs in grants.values()) and ("", "secrets") not in grants
    assert grants[("cobstack.dev", "cobstacks")] == {"get", "list", "watch"}
    assert grants[("cobstack.dev", "cobstacks/status")] == {"patch"}
    assert grants[("apps", "deployments")] == {"get", "list", "watch", "create", "patch"}
    assert "delete" in grants[("batch", "jobs")]
    assert all("delete" not in verbs for (g, r), verbs in grants.items() if r != "jobs")


def test_namespaced_install_uses_roles_only():
    docs = template(*VARIANTS["namespaced"])
    kinds = [d["kind"] for d in docs]
    assert "ClusterRole" not in kinds and "ClusterRoleBinding" not in kinds
    assert sorted(d["metadata"]["namespace"] for d in docs if d["kind"] == "Role") == ["team-a", "team-b"]
    (dep,) = [d for d in docs if d["kind"] == "Deployment"]
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--namespace=team-a" in args and "--all-namespaces" not in args


def test_example_cobstack_matches_the_crd():
    crd_schema = crdgen.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    jsonschema.Draft4Validator(crd_schema).validate(yaml.safe_load((REPO / "examples" / "cobstack.yaml").read_text()))
