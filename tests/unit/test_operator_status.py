"""CobStack status from children's status: conditions, Ready, phase, summaries; job history."""

from __future__ import annotations

from typing import Any

from cobstack_operator.reconcile import fingerprint, jobs_to_delete
from cobstack_operator.spec import parse_spec
from cobstack_operator.status import build_status, invalid_status

T0, T1 = "2030-01-01T00:00:00Z", "2030-01-01T00:05:00Z"


def deployment(name: str, available: int, generation: int = 1, observed: int = 1) -> dict[str, Any]:
    return {"metadata": {"name": name, "generation": generation},
            "status": {"observedGeneration": observed, "availableReplicas": available,
                       "updatedReplicas": available, "readyReplicas": available}}


def job(name: str, *, active: int = 0, condition: str | None = None, created: str = T0) -> dict[str, Any]:
    conds = [{"type": condition, "status": "True", "reason": "Why", "message": "because"}] if condition else []
    return {"metadata": {"name": name, "creationTimestamp": created},
            "status": {"active": active, "ready": active, "conditions": conds}}


def healthy(spec_overrides: dict | None = None, job_obj: dict | None = None) -> dict:
    children = {("Deployment", f"demo-{c}"): deployment(f"demo-{c}", 1) for c in ("ingest", "dashboard", "executor")}
    children[("StatefulSet", "demo-redis")] = {"metadata": {"name": "demo-redis"}, "status": {
        "readyReplicas": 1, "currentRevision": "r1", "updateRevision": "r1"}}
    if job_obj:
        children[("Job", job_obj["metadata"]["name"])] = job_obj
    return children


def status(children, spec=None, previous=None, now=T0, **kw):
    return build_status(name="demo", spec=parse_spec(spec or {}), generation=3, children=children,
                        previous=previous, now=now, job_name="demo-train-1", **kw)


def conds(st: dict) -> dict[str, dict]:
    return {c["type"]: c for c in st["conditions"]}


def test_all_components_available_is_ready():
    st = status(healthy(job_obj=job("demo-train-1", active=1)))
    c = conds(st)
    for t in ("RedisReady", "IngestReady", "DashboardReady", "ExecutorReady", "TrainerReady", "Ready"):
        assert c[t]["status"] == "True", (t, c[t])
        assert c[t]["observedGeneration"] == 3
    assert c["TrainerSucceeded"]["status"] == c["TrainerFailed"]["status"] == "False"
    assert c["ReconciliationPaused"]["status"] == "False" and c["InvalidSpec"]["status"] == "False"
    assert (st["phase"], st["training"], st["venues"], st["symbols"]) == ("Ready", "Running", 3, 2)
    assert st["observedGeneration"] == 3
    assert st["components"]["ingest"] == {"ready": 1, "desired": 1}
    assert st["streams"] == {"bus": "demo-redis:6379"}


def test_unavailable_ingest_blocks_ready_and_says_why():
    children = healthy()
    children[("Deployment", "demo-ingest")] = deployment("demo-ingest", 0)
    c = conds(status(children))
    assert c["IngestReady"]["status"] == "False" and c["IngestReady"]["reason"] == "Progressing"
    assert c["Ready"]["reason"] == "ComponentsNotReady"
    assert "IngestReady (0/1 pods available" in c["Ready"]["message"]


def test_rollout_not_yet_observed_is_not_ready():
    children = healthy()
    children[("Deployment", "demo-dashboard")] = deployment("demo-dashboard", 1, generation=2, observed=1)
    assert conds(status(children))["DashboardReady"]["reason"] == "RolloutPending"


def test_scaled_to_zero_components_do_not_block_ready():
    children = healthy()
    del children[("Deployment", "demo-executor")]
    c = conds(status(children, {"executor": {"replicas": 0}}))
    assert c["ExecutorReady"]["reason"] == "ScaledToZero" and c["Ready"]["status"] == "True"


def test_no_children_yet_is_pending():
    st = status({})
    assert st["phase"] == "Pending"
    assert conds(st)["RedisReady"]["reason"] == "NotFound"


def test_trainer_outcomes():
    ok = status(healthy(job_obj=job("demo-train-1", condition="Complete")))
    assert ok["training"] == "Succeeded" and conds(ok)["TrainerSucceeded"]["status"] == "True"
    failed = status(healthy(job_obj=job("demo-train-1", condition="Failed")))
    c = conds(failed)
    assert failed["training"] == "Failed" and c["TrainerFailed"]["status"] == "True"
    assert c["Ready"]["reason"] == "TrainerFailed" and failed["phase"] == "Failed"
    assert "because" in c["TrainerFailed"]["message"]
    suspended = status(healthy(job_obj=job("demo-train-1", condition="Suspended")))
    assert suspended["training"] == "Suspended" and conds(suspended)["TrainerReady"]["status"] == "False"
    disabled = status(healthy(), {"trainer": {"enabled": False}})
    assert disabled["training"] == "Disabled"
    unscheduled = job("demo-train-1")
    unscheduled["status"]["active"] = 1  # a created pod is "active" before it runs
    assert status(healthy(job_obj=unscheduled))["training"] == "Pending"


def test_external_redis_is_reported_as_not_probed():
    c = conds(status(healthy(), {"redis": {"externalSecret": {"name": "bus"}}}))
    assert c["RedisReady"]["reason"] == "External" and "not probed" in c["RedisReady"]["message"]


def test_transition_time_moves_only_when_status_flips():
    first = status(healthy(job_obj=job("demo-train-1", active=1)))
    same = status(healthy(job_obj=job("demo-train-1", active=1)), previous=first, now=T1)
    assert conds(same)["Ready"]["lastTransitionTime"] == T0
    children = healthy()
    children[("Deployment", "demo-ingest")] = deployment("demo-ingest", 0)
    flipped = status(children, previous=first, now=T1)
    assert conds(flipped)["Ready"]["lastTransitionTime"] == T1
    assert conds(flipped)["RedisReady"]["lastTransitionTime"] == T0


def test_paused_phase_and_condition():
    st = status(healthy(), {"paused": True})
    assert st["phase"] == "Paused" and conds(st)["ReconciliationPaused"]["status"] == "True"


def test_invalid_status_keeps_observations_and_flags_the_spec():
    before = status(healthy(job_obj=job("demo-train-1", active=1)))
    st = invalid_status(previous=before, generation=4, message="spec.stack.symbols.0: bad", now=T1)
    c = conds(st)
    assert c["InvalidSpec"]["status"] == "True" and c["InvalidSpec"]["message"] == "spec.stack.symbols.0: bad"
    assert c["Ready"]["status"] == "False" and c["Ready"]["reason"] == "InvalidSpec"
    assert c["IngestReady"] == conds(before)["IngestReady"]
    assert (st["phase"], st["observedGeneration"]) == ("Invalid", 4)


def test_venue_health_summary_from_ingest_healthz():
    health = {"venues": {"binance": {"state": "live", "last_msg_age_ms": 12, "resyncs": 1},
                         "coinbase": {"state": "connecting", "last_msg_age_ms": None, "resyncs": 0}},
              "bus": {"up": True}, "published": {"BTC-USD": 40}}
    st = status(healthy(), health=health, health_note="read http://demo-ingest.ns.svc:9108/healthz")
    assert st["venueHealth"] == {"binance": {"state": "live", "lastMessageAgeMs": 12, "resyncs": 1},
                                 "coinbase": {"state": "connecting", "resyncs": 0}}
    assert st["streams"] == {"bus": "demo-redis:6379", "snapshotsPublished": {"BTC-USD": 40}, "busUp": True}
    assert st["healthProbe"].startswith("read ")


def test_superseded_jobs_are_deleted_and_history_is_bounded():
    jobs = [job("t-old1", condition="Complete", created="2030-01-01T00:00:01Z"),
            job("t-old2", condition="Failed", created="2030-01-01T00:00:02Z"),
            job("t-old3", condition="Complete", created="2030-01-01T00:00:03Z"),
            job("t-running", active=1, created="2030-01-01T00:00:04Z"),
            job("t-current", created="2030-01-01T00:00:05Z")]
    assert jobs_to_delete(jobs, "t-current", keep=3) == ["t-running", "t-old1"]
    assert jobs_to_delete(jobs, "t-current", keep=1) == ["t-running", "t-old3", "t-old2", "t-old1"]
    assert jobs_to_delete(jobs, None, keep=1) == ["t-running", "t-current", "t-old2", "t-old1"]


def test_fingerprint_is_the_operators_own_fields():
    def obj(*entries):
        return {"metadata": {"resourceVersion": "1", "managedFields": list(entries)}}

    ours = {"manager": "cobstack-operator", "operation": "Apply", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
    lost = {**ours, "fieldsV1": {"f:spec": {}}}
    theirs = {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:status": {}}}
    status = {**ours, "subresource": "status", "fieldsV1": {"f:status": {"f:x": {}}}}
    assert fingerprint(None) is None
    assert fingerprint(obj(ours)) == fingerprint(obj(ours, theirs, status)), "others' writes are not drift"
    assert fingerprint(obj(ours)) != fingerprint(obj(lost)), "a field taken over by someone else is"
