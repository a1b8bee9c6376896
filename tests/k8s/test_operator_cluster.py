"""The operator against a real API server + controller manager (tests/k8s/conftest.py).

The chart is installed with the real helm (CRDs, RBAC, ServiceAccount; its operator Deployment
stays Pending: there is no kubelet), and the operator runs here as a process authenticated with
that ServiceAccount's token, so every test also proves the chart's RBAC is enough.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from cobstack_operator.render import HASH_ANNOTATION, render

pytestmark = pytest.mark.k8s

REPO = Path(__file__).resolve().parents[2]
HELM = REPO / ".tools" / "bin" / "helm"
EXAMPLE = yaml.safe_load((REPO / "examples" / "cobstack.yaml").read_text())
RELEASE, SYSTEM_NS = "cob", "cobstack-system"
OPERATOR_SA = f"{RELEASE}-cobstack"
INSTANCE = "app.kubernetes.io/instance"
ControlPlane = Any  # tests/k8s/conftest.py:ControlPlane
T = TypeVar("T")


def eventually(what: str, probe: Callable[[], T | None], timeout: float = 60.0, log: Path | None = None) -> T:
    deadline = time.monotonic() + timeout
    while not (result := probe()):
        if time.monotonic() > deadline:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:]) if log and log.exists() else ""
            pytest.fail(f"{what}: not within {timeout:.0f} s" + (f"\noperator log tail:\n{tail}" if tail else ""))
        time.sleep(0.3)
    return result


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, plane: ControlPlane):
        self.plane = plane

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
        cmd = ["kubectl", *(["--kubeconfig", str(kubeconfig)] if kubeconfig else []), *args]
        out = subprocess.run(cmd, env=self.plane.env, input=input, capture_output=True, text=True, timeout=60)
        if check and out.returncode != 0:
            pytest.fail(f"{' '.join(cmd)} failed ({out.returncode}): {out.stderr}")
        return out

    def get(self, kind: str, name: str, ns: str) -> dict[str, Any] | None:
        out = self.kubectl("get", kind, name, "-n", ns, "-o", "json", check=False)
        if out.returncode != 0:
            if "NotFound" in out.stderr:
                return None
            pytest.fail(f"kubectl get {kind} {name}: {out.stderr}")
        return json.loads(out.stdout)

    def list(self, kind: str, ns: str, instance: str) -> list[dict[str, Any]]:
        out = self.kubectl("get", kind, "-n", ns, "-l", f"{INSTANCE}={instance}", "-o", "json")
        return json.loads(out.stdout)["items"]

    def apply(self, obj: dict[str, Any], ns: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(obj), check=check)

    def patch(self, name: str, ns: str, patch: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.kubectl("patch", "cobstack", name, "-n", ns, "--type", "merge", "-p", json.dumps(patch),
                            check=check)

    def condition(self, name: str, ns: str, type_: str) -> dict[str, Any] | None:
        body = self.get("cobstack", name, ns) or {}
        return next((c for c in (body.get("status") or {}).get("conditions", []) if c["type"] == type_), None)

    def observed(self, name: str, ns: str) -> dict[str, Any] | None:
        """The CobStack once the operator has reported on its current generation."""
        body = self.get("cobstack", name, ns)
        if body and (body.get("status") or {}).get("observedGeneration") == body["metadata"]["generation"]:
            return body
        return None


class Operator:
    """`cobstack-operator` as a process with the chart ServiceAccount's token."""

    def __init__(self, kubeconfig: Path, workdir: Path):
        self.kubeconfig, self.log = kubeconfig, workdir / "operator.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        health = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("COBSTACK_")}
        env["KUBECONFIG"] = str(self.kubeconfig)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "cobstack_operator", "--all-namespaces", "--metrics-port", "0",
                 "--liveness", f"http://127.0.0.1:{health}/healthz", "--resync-seconds", "10"],
                env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

        def alive() -> bool:
            if self.proc.poll() is not None:
                pytest.fail(f"operator exited {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{health}/healthz", timeout=1) as r:
                    return r.status == 200
            except OSError:
                return False

        eventually("operator liveness endpoint", alive, timeout=60, log=self.log)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture(scope="module")
def cluster(control_plane: ControlPlane) -> Cluster:
    return Cluster(control_plane)


@pytest.fixture(scope="module")
def operator(control_plane: ControlPlane, cluster: Cluster) -> Iterator[Operator]:
    if not os.access(HELM, os.X_OK):
        pytest.fail(f"helm missing: run `make tools` ({HELM} not built)")
    out = subprocess.run([str(HELM), "install", RELEASE, str(REPO / "charts" / "cobstack"), "-n", SYSTEM_NS,
                          "--create-namespace"], env=control_plane.env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    cluster.kubectl("wait", "--for=condition=Established", "crd/cobstacks.cobstack.dev", "--timeout=60s")
    eventually("chart ServiceAccount", lambda: cluster.get("serviceaccount", OPERATOR_SA, SYSTEM_NS))
    op = Operator(control_plane.token_kubeconfig(SYSTEM_NS, OPERATOR_SA), control_plane.workdir)
    op.start()
    yield op
    op.stop()
    subprocess.run([str(HELM), "uninstall", RELEASE, "-n", SYSTEM_NS], env=control_plane.env,
                   capture_output=True, timeout=120)


@pytest.fixture
def ns(cluster: Cluster, operator: Operator) -> Iterator[str]:
    name = f"op-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def example(name: str = "demo", **spec_changes: Any) -> dict[str, Any]:
    obj = json.loads(json.dumps(EXAMPLE))
    obj["metadata"]["name"] = name
    obj["spec"].update(spec_changes)
    return obj


def converge(cluster: Cluster, operator: Operator, name: str, ns: str) -> dict[str, Any]:
    """Wait until every rendered child exists and the status reports the current generation."""
    body = eventually(f"CobStack {name} observed", lambda: cluster.observed(name, ns), log=operator.log)
    for child in render(name, ns, body["spec"], body["metadata"]["uid"]):
        eventually(f"{child['kind']} {child['metadata']['name']}",
                   lambda: cluster.get(child["kind"], child["metadata"]["name"], ns), log=operator.log)
    return cluster.observed(name, ns) or body


def container(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]["containers"][0]


def template_hash(cluster: Cluster, name: str, ns: str) -> str:
    return cluster.get("deployment", name, ns)["spec"]["template"]["metadata"]["annotations"][HASH_ANNOTATION]


def jobs(cluster: Cluster, ns: str, instance: str = "demo") -> list[str]:
    return sorted(j["metadata"]["name"] for j in cluster.list("jobs", ns, instance)
                  if not j["metadata"].get("deletionTimestamp"))


# --- tests ---------------------------------------------------------------------------------


def test_example_creates_every_child_as_rendered(cluster: Cluster, operator: Operator, ns: str):
    cluster.apply(example(), ns)
    body = converge(cluster, operator, "demo", ns)
    uid = body["metadata"]["uid"]
    for want in render("demo", ns, body["spec"], uid):
        live = cluster.get(want["kind"], want["metadata"]["name"], ns)
        assert live["metadata"].get("ownerReferences") == want["metadata"].get("ownerReferences"), want["metadata"]["name"]
        assert want["metadata"]["labels"].items() <= live["metadata"]["labels"].items()
        if want["kind"] in ("Deployment", "StatefulSet", "Job"):
            got, exp = container(live), container(want)
            for key in ("image", "command", "args", "env", "resources", "securityContext"):
                assert got.get(key) == exp.get(key), (want["metadata"]["name"], key)
            assert live["spec"]["template"]["spec"]["securityContext"] == want["spec"]["template"]["spec"]["securityContext"]
        if want["kind"] == "ConfigMap":
            assert live["data"] == want["data"]
    # The API server applied the CRD defaults: the stored spec is the effective one.
    assert body["spec"]["dashboard"]["serviceType"] == "ClusterIP"
    assert body["spec"]["stack"]["ingest"]["metrics_port"] == 9108

    status = body["status"]
    types = {c["type"]: c for c in status["conditions"]}
    for t in ("RedisReady", "IngestReady", "TrainerReady", "TrainerSucceeded", "TrainerFailed",
              "ExecutorReady", "DashboardReady", "Ready", "InvalidSpec", "ReconciliationPaused"):
        assert types[t]["observedGeneration"] == body["metadata"]["generation"], t
        assert types[t]["reason"] and types[t]["lastTransitionTime"], t
    # No kubelet: nothing becomes available, and the status says so rather than pretending.
    assert types["Ready"]["status"] == "False" and "IngestReady" in types["Ready"]["message"]
    assert (status["venues"], status["symbols"], status["training"]) == (3, 2, "Pending")

    table = cluster.kubectl("get", "cob", "demo", "-n", ns).stdout.split("\n")
    header, row = table[0].split(), table[1].split()
    assert header[:6] == ["NAME", "READY", "PHASE", "VENUES", "SYMBOLS", "TRAINING"]
    assert row[:6] == ["demo", "False", "Progressing", "3", "2", "Pending"]


def test_spec_change_rolls_only_the_affected_deployment_and_training_change_makes_a_new_job(
        cluster: Cluster, operator: Operator, ns: str):
    cluster.apply(example(), ns)
    converge(cluster, operator, "demo", ns)
    before = {c: cluster.get("deployment", f"demo-{c}", ns) for c in ("ingest", "dashboard", "executor")}
    (first_job,) = jobs(cluster, ns)

    cluster.patch("demo", ns, {"spec": {"stack": {"dashboard": {"port": 8100}}}})
    old_hash = before["dashboard"]["spec"]["template"]["metadata"]["annotations"][HASH_ANNOTATION]
    eventually("dashboard pod template rolled", lambda: template_hash(cluster, "demo-dashboard", ns) != old_hash,
               log=operator.log)
    converge(cluster, operator, "demo", ns)
    for c in ("ingest", "executor"):
        after = cluster.get("deployment", f"demo-{c}", ns)
        assert after["metadata"]["generation"] == before[c]["metadata"]["generation"], c
    assert jobs(cluster, ns) == [first_job], "a dashboard change is not a training change"

    cluster.patch("demo", ns, {"spec": {"stack": {"trainer": {"preset": "base"}}}})
    (second_job,) = eventually("the superseded Job replaced by a new one",
                               lambda: (j := jobs(cluster, ns)) and first_job not in j and j, log=operator.log)
    assert second_job != first_job and second_job.startswith("demo-train-")
    assert cluster.observed("demo", ns)["status"]["trainerJob"] == second_job

    cluster.patch("demo", ns, {"spec": {"trainer": {"suspend": True}}})
    eventually("suspend reaches the same Job", lambda: (cluster.get("job", second_job, ns) or {}).get(
        "spec", {}).get("suspend") is True, log=operator.log)
    assert jobs(cluster, ns) == [second_job]


@pytest.mark.parametrize("change, refusal", [
    ({"redis": {"managed": {}, "externalUrl": "redis://cache:6379"}}, "set exactly one of redis.managed"),
    ({"trainer": {"gpus": -1}}, "spec.trainer.gpus"),
    ({"stack": {"venues": ["nasdaq"]}}, "Unsupported value"),
    ({"stack": {"redis_url": "redis://x"}}, "unknown field"),
    ({"stack": {"ingest": {"metrics_port": 0}}}, "metrics_port 0 disables"),
])
def test_api_server_refuses_invalid_specs(cluster: Cluster, operator: Operator, ns: str, change, refusal):
    out = cluster.apply(example(**change), ns, check=False)
    assert out.returncode != 0 and refusal in out.stderr, out.stderr


def test_api_server_guards_immutable_fields_and_name_length(cluster: Cluster, operator: Operator, ns: str):
    cluster.apply(example(), ns)
    out = cluster.patch("demo", ns, {"spec": {"redis": {"managed": None, "externalUrl": "redis://c:6379"}}}, check=False)
    assert out.returncode != 0 and "redis mode (managed or external) is immutable" in out.stderr
    out = cluster.patch("demo", ns, {"spec": {"redis": {"managed": {"storage": "5Gi"}}}}, check=False)
    assert out.returncode != 0 and "redis.managed.storage is immutable" in out.stderr
    out = cluster.apply(example("x" * 41), ns, check=False)
    assert out.returncode != 0 and "at most 40 characters" in out.stderr


def test_invalid_spec_condition_and_nothing_half_applied(cluster: Cluster, operator: Operator, ns: str):
    cluster.apply(example(), ns)
    converge(cluster, operator, "demo", ns)
    config_before = cluster.get("configmap", "demo-config", ns)

    # Valid for the schema, refused by the config model: a symbol that is not BASE-QUOTE.
    cluster.patch("demo", ns, {"spec": {"stack": {"symbols": ["BTCUSD"]}}})
    body = eventually("InvalidSpec", lambda: (b := cluster.observed("demo", ns)) and b["status"]["phase"] == "Invalid" and b,
                      log=operator.log)
    invalid = next(c for c in body["status"]["conditions"] if c["type"] == "InvalidSpec")
    assert invalid["status"] == "True" and "spec.stack.symbols" in invalid["message"]

    # A config change together with a Job the API server refuses: neither is applied.
    cluster.patch("demo", ns, {"spec": {"stack": {"symbols": ["BTC-USD"], "ingest": {"publish_interval_ms": 55}},
                                        "trainer": {"nodeSelector": {"gpu": "not a label value!"}}}})
    body = eventually("InvalidSpec from the dry run", lambda: (b := cluster.observed("demo", ns)) and next(
        (c for c in b["status"]["conditions"] if c["type"] == "InvalidSpec" and "refused by the API server" in c["message"]),
        None), log=operator.log)
    assert "Job demo-train-" in body["message"]
    assert cluster.get("configmap", "demo-config", ns)["metadata"]["resourceVersion"] == \
        config_before["metadata"]["resourceVersion"]
    events = cluster.kubectl("get", "events", "-n", ns, "--field-selector", "reason=InvalidSpec", "-o", "json").stdout
    assert json.loads(events)["items"], "an InvalidSpec Warning event is posted"

    cluster.patch("demo", ns, {"spec": {"trainer": {"nodeSelector": None}}})
    eventually("valid again and applied", lambda: "publish_interval_ms: 55" in (
        cluster.get("configmap", "demo-config", ns)["data"]["config.yaml"]), log=operator.log)
    eventually("InvalidSpec cleared", lambda: (c := cluster.condition("demo", ns, "InvalidSpec")) and c["status"] == "False")


def test_drift_is_corrected(cluster: Cluster, operator: Operator, ns: str):
    cluster.apply(example(), ns)
    converge(cluster, operator, "demo", ns)
    old_uid = cluster.get("deployment", "demo-ingest", ns)["metadata"]["uid"]

    cluster.kubectl("delete", "deployment", "demo-ingest", "-n", ns)
    eventually("deleted ingest Deployment restored", lambda: (d := cluster.get("deployment", "demo-ingest", ns))
               and d["metadata"]["uid"] != old_uid, log=operator.log)

    cluster.kubectl("scale", "deployment", "demo-dashboard", "-n", ns, "--replicas=4")
    eventually("hand-scaled dashboard scaled back", lambda: cluster.get("deployment", "demo-dashboard", ns)[
        "spec"]["replicas"] == 1, log=operator.log)

    cluster.kubectl("patch", "configmap", "demo-config", "-n", ns, "--type", "merge", "-p",
                    json.dumps({"data": {"config.yaml": "symbols: [DOGE-USD]\n"}}))
    eventually("edited ConfigMap restored", lambda: "DOGE" not in cluster.get("configmap", "demo-config", ns)[
        "data"]["config.yaml"], log=operator.log)

    def drift_events() -> list[str]:
        out = cluster.kubectl("get", "events", "-n", ns, "--field-selector", "reason=DriftCorrected", "-o", "json")
        return [e["message"] for e in json.loads(out.stdout)["items"]]

    messages = eventually("DriftCorrected events", lambda: (m := drift_events()) and len(m) >= 3 and m)
    assert any("Deployment/demo-ingest" in m for m in messages)
    assert any("ConfigMap/demo-config" in m for m in messages)


def test_paused_stops_reconciliation(cluster: Cluster, operator: Operator, ns: str):
    cluster.apply(example(), ns)
    converge(cluster, operator, "demo", ns)
    cluster.patch("demo", ns, {"spec": {"paused": True, "dashboard": {"replicas": 2}}})
    body = eventually("paused reported", lambda: (b := cluster.observed("demo", ns)) and b["status"]["phase"] == "Paused" and b)
    paused = next(c for c in body["status"]["conditions"] if c["type"] == "ReconciliationPaused")
    assert paused["status"] == "True"
    cluster.kubectl("delete", "service", "demo-dashboard", "-n", ns)
    time.sleep(3)  # long enough for a reconcile that should not happen
    assert cluster.get("deployment", "demo-dashboard", ns)["spec"]["replicas"] == 1
    assert cluster.get("service", "demo-dashboard", ns) is None

    cluster.patch("demo", ns, {"spec": {"paused": False}})
    eventually("unpaused: change applied", lambda: cluster.get("deployment", "demo-dashboard", ns)["spec"]["replicas"] == 2)
    eventually("unpaused: deleted Service restored", lambda: cluster.get("service", "demo-dashboard", ns))


def test_delete_garbage_collects_children_and_retains_checkpoints(cluster: Cluster, operator: Operator, ns: str):
    cluster.apply(example(trainer={"gpus": 0, "checkpoint": {"reclaimPolicy": "Retain"}}), ns)
    converge(cluster, operator, "demo", ns)
    cluster.kubectl("delete", "cobstack", "demo", "-n", ns, "--wait=false")
    for kind in ("deployments", "statefulsets", "services", "configmaps", "jobs"):
        eventually(f"{kind} garbage-collected", lambda: not cluster.list(kind, ns, "demo"), timeout=90)
    assert cluster.get("pvc", "demo-checkpoints", ns), "Retain keeps the checkpoint claim"


def test_operator_killed_mid_reconcile_converges_without_duplicates(cluster: Cluster, operator: Operator, ns: str):
    cluster.apply(example(), ns)
    eventually("first child", lambda: cluster.list("configmaps", ns, "demo"), log=operator.log)
    operator.kill()
    cluster.patch("demo", ns, {"spec": {"stack": {"trainer": {"preset": "base"}}}})  # changed while it is down
    operator.start()
    body = converge(cluster, operator, "demo", ns)
    rendered = render("demo", ns, body["spec"], body["metadata"]["uid"])
    want_job = next(o["metadata"]["name"] for o in rendered if o["kind"] == "Job")
    eventually("only the current Job left", lambda: jobs(cluster, ns) == [want_job], log=operator.log)
    for c in ("ingest", "dashboard", "executor"):
        owned = [rs for rs in cluster.list("replicasets", ns, "demo")
                 if rs["metadata"]["ownerReferences"][0]["name"] == f"demo-{c}"]
        assert len(owned) == 1, f"demo-{c} rolled out more than once: {[rs['metadata']['name'] for rs in owned]}"


def test_operator_rights_are_least_privilege(cluster: Cluster, operator: Operator):
    def can(*args: str) -> bool:
        out = cluster.kubectl("auth", "can-i", *args, "-A", kubeconfig=operator.kubeconfig, check=False)
        return out.stdout.strip() == "yes"

    assert can("patch", "deployments") and can("create", "jobs") and can("patch", "cobstacks", "--subresource=status")
    assert not can("get", "secrets")
    assert not can("delete", "deployments")
    assert not can("update", "cobstacks")
    assert not can("create", "pods")
