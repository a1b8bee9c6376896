"""CobStack status from what the cluster reports about the children. Pure.

Each component condition is read from its child's own status (Deployment, StatefulSet, Job);
Ready aggregates them; the phase is derived from the conditions, never stored separately.
lastTransitionTime only moves when a condition's status flips.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .render import REDIS_PORT
from .spec import CobStackSpec

Children = Mapping[tuple[str, str], dict[str, Any]]  # (kind, name) -> live object

COMPONENT_CONDITIONS = ("RedisReady", "IngestReady", "DashboardReady", "ExecutorReady")
TRAINER_CONDITIONS = ("TrainerReady", "TrainerSucceeded", "TrainerFailed")


@dataclass(frozen=True)
class Check:
    ok: bool
    reason: str
    message: str


def condition(type_: str, check: Check, generation: int, previous: Mapping[str, dict[str, Any]],
              now: str) -> dict[str, Any]:
    status = "True" if check.ok else "False"
    before = previous.get(type_)
    since = before["lastTransitionTime"] if before and before.get("status") == status else now
    return {"type": type_, "status": status, "observedGeneration": generation, "reason": check.reason,
            "message": check.message, "lastTransitionTime": since}


def deployment_check(obj: dict[str, Any] | None, desired: int) -> Check:
    if desired == 0:
        return Check(False, "ScaledToZero", "replicas is 0")
    if obj is None:
        return Check(False, "NotFound", "Deployment not created yet")
    st = obj.get("status") or {}
    current = st.get("observedGeneration", 0) >= obj["metadata"].get("generation", 0)
    available, updated = st.get("availableReplicas", 0), st.get("updatedReplicas", 0)
    text = f"{available}/{desired} pods available, {updated} updated"
    if current and available >= desired and updated >= desired:
        return Check(True, "Available", text)
    return Check(False, "Progressing" if current else "RolloutPending", text)


def statefulset_check(obj: dict[str, Any] | None) -> Check:
    if obj is None:
        return Check(False, "NotFound", "StatefulSet not created yet")
    st = obj.get("status") or {}
    ready = st.get("readyReplicas", 0)
    if ready >= 1 and st.get("currentRevision") == st.get("updateRevision"):
        return Check(True, "Available", f"{ready}/1 pods ready")
    return Check(False, "Progressing", f"{ready}/1 pods ready")


def redis_check(spec: CobStackSpec, children: Children, name: str) -> Check:
    redis = spec.redis
    if redis.managed:
        return statefulset_check(children.get(("StatefulSet", f"{name}-redis")))
    where = (f"Secret {redis.external_secret.name} key {redis.external_secret.key}" if redis.external_secret
             else "spec.redis.externalUrl")
    # The operator does not connect to a Redis it does not run; ingest's readiness says whether it works.
    return Check(True, "External", f"external Redis from {where}, not probed by the operator")


def training_state(job: dict[str, Any] | None, enabled: bool) -> tuple[str, str]:
    """(state, message) of the current training Job."""
    if not enabled:
        return "Disabled", "spec.trainer.enabled is false"
    if job is None:
        return "Pending", "training Job not created yet"
    st = job.get("status") or {}
    conds = {c["type"]: c for c in st.get("conditions", []) if c.get("status") == "True"}
    for kind, state in (("Complete", "Succeeded"), ("Failed", "Failed"), ("Suspended", "Suspended")):
        if kind in conds:
            c = conds[kind]
            return state, f"Job {job['metadata']['name']}: {c.get('reason', kind)} {c.get('message', '')}".strip()
    active, ready = st.get("active", 0), st.get("ready", 0)
    if ready > 0:
        return "Running", f"Job {job['metadata']['name']}: {ready} pod(s) running"
    return "Pending", f"Job {job['metadata']['name']}: {active} pod(s) created, none running yet"


def trainer_checks(state: str, message: str) -> dict[str, Check]:
    return {
        "TrainerReady": Check(state in ("Running", "Succeeded"), state, message),
        "TrainerSucceeded": Check(state == "Succeeded", state, message),
        "TrainerFailed": Check(state == "Failed", state, message),
    }


def phase(conditions: list[dict[str, Any]], any_child: bool) -> str:
    true = {c["type"] for c in conditions if c["status"] == "True"}
    if "ReconciliationPaused" in true:
        return "Paused"
    if "InvalidSpec" in true:
        return "Invalid"
    if "TrainerFailed" in true:
        return "Failed"
    if "Ready" in true:
        return "Ready"
    return "Progressing" if any_child else "Pending"


def _replicas(obj: dict[str, Any] | None, desired: int) -> dict[str, int]:
    ready = ((obj or {}).get("status") or {}).get("readyReplicas", 0)
    return {"ready": ready, "desired": desired}


def health_summary(health: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(venueHealth, stream fields) from ingest's /healthz body."""
    venues = {v: {"state": str(x.get("state", "unknown")), "lastMessageAgeMs": x.get("last_msg_age_ms"),
                  "resyncs": int(x.get("resyncs", 0))}
              for v, x in (health.get("venues") or {}).items()}
    for v in venues.values():
        if v["lastMessageAgeMs"] is None:
            del v["lastMessageAgeMs"]
    streams = {"snapshotsPublished": {k: int(n) for k, n in (health.get("published") or {}).items()},
               "busUp": bool((health.get("bus") or {}).get("up"))}
    return venues, streams


def build_status(*, name: str, spec: CobStackSpec, generation: int, children: Children,
                 previous: Mapping[str, Any] | None, now: str, job_name: str | None,
                 health: dict[str, Any] | None = None, health_note: str | None = None) -> dict[str, Any]:
    """The whole status of a valid CobStack from its children (paused or not)."""
    before = {c["type"]: c for c in (previous or {}).get("conditions", [])}
    deployment = lambda c: children.get(("Deployment", f"{name}-{c}"))  # noqa: E731
    checks = {
        "RedisReady": redis_check(spec, children, name),
        "IngestReady": deployment_check(deployment("ingest"), spec.ingest.replicas),
        "DashboardReady": deployment_check(deployment("dashboard"), spec.dashboard.replicas),
        "ExecutorReady": deployment_check(deployment("executor"), spec.executor.replicas),
    }
    job = children.get(("Job", job_name)) if job_name else None
    training, training_message = training_state(job, spec.trainer.enabled)
    checks.update(trainer_checks(training, training_message))
    # Scaled to zero on purpose is not "not ready"; ingest is the stack, so it always counts.
    required = ["RedisReady", "IngestReady"] + [
        c for c, replicas in (("DashboardReady", spec.dashboard.replicas), ("ExecutorReady", spec.executor.replicas))
        if replicas > 0]
    waiting = [f"{c} ({checks[c].message})" for c in required if not checks[c].ok]
    if checks["TrainerFailed"].ok:
        checks["Ready"] = Check(False, "TrainerFailed", training_message)
    elif waiting:
        checks["Ready"] = Check(False, "ComponentsNotReady", "waiting for " + "; ".join(waiting))
    else:
        checks["Ready"] = Check(True, "AllComponentsReady", "every component is available")
    checks["InvalidSpec"] = Check(False, "Valid", "spec accepted")
    checks["ReconciliationPaused"] = (Check(True, "Paused", "spec.paused is true: children are left as they are")
                                      if spec.paused else Check(False, "Reconciling", "the operator reconciles"))
    conditions = [condition(t, c, generation, before, now) for t, c in checks.items()]
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "phase": phase(conditions, any(True for _ in children)),
        "conditions": conditions,
        "venues": len(spec.stack.venues),
        "symbols": len(spec.stack.symbols),
        "training": training,
        "components": {
            "ingest": _replicas(deployment("ingest"), spec.ingest.replicas),
            "dashboard": _replicas(deployment("dashboard"), spec.dashboard.replicas),
            "executor": _replicas(deployment("executor"), spec.executor.replicas),
        },
        "streams": {"bus": f"{name}-redis:{REDIS_PORT}" if spec.redis.managed else "external"},
    }
    if job_name:
        status["trainerJob"] = job_name
    if health is not None:
        status["venueHealth"], streams = health_summary(health)
        status["streams"].update(streams)
    if health_note:
        status["healthProbe"] = health_note
    return status


def invalid_status(*, previous: Mapping[str, Any] | None, generation: int, message: str, now: str) -> dict[str, Any]:
    """Keep what was observed before, flag the spec: nothing was applied for this generation."""
    before = {c["type"]: c for c in (previous or {}).get("conditions", [])}
    kept = [c for t, c in before.items() if t not in ("InvalidSpec", "Ready")]
    conditions = kept + [
        condition("InvalidSpec", Check(True, "InvalidSpec", message), generation, before, now),
        condition("Ready", Check(False, "InvalidSpec", "the spec is invalid; see the InvalidSpec condition"),
                  generation, before, now),
    ]
    return {**(previous or {}), "observedGeneration": generation, "phase": phase(conditions, True),
            "conditions": conditions}
