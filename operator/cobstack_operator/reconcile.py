"""One reconcile of one CobStack: read, render, validate everything, apply, prune, report.

Level-triggered and idempotent: it always starts from the live objects, so running it twice,
or after a crash half-way, converges to the same children. Drift is whatever an apply changed
while the spec generation stayed the same (someone edited or deleted a child).
"""

from __future__ import annotations

import asyncio
import datetime
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .kube import CHILD_KINDS, FIELD_MANAGER, ApiError, Kube
from .render import MANAGER, render
from .spec import InvalidSpec, parse_spec
from .status import build_status, invalid_status

HEALTH_TIMEOUT_S = 2.0

HealthReader = Callable[[str, str, int], Awaitable[tuple[dict[str, Any] | None, str]]]


@dataclass
class Outcome:
    result: str  # applied | paused | invalid | gone
    changed: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    message: str = ""


def utcnow() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fingerprint(obj: dict[str, Any] | None) -> str | None:
    """The fields the operator owns on an object (its server-side-apply managedFields entry).
    Someone else changing one of them takes it over, so our next apply changes this; controllers
    writing status or their own fields (finalizers, defaults) leave it alone."""
    if obj is None:
        return None
    ours = [e for e in obj["metadata"].get("managedFields", [])
            if e.get("manager") == FIELD_MANAGER and e.get("operation") == "Apply" and not e.get("subresource")]
    return json.dumps([e.get("fieldsV1") for e in ours], sort_keys=True)


def _finished(job: dict[str, Any]) -> bool:
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions", []))


def jobs_to_delete(jobs: list[dict[str, Any]], current: str | None, keep: int) -> list[str]:
    """Superseded training Jobs to delete: each one still running or suspended (two trainers would
    share one checkpoint volume), and finished ones beyond the `keep` newest, current included."""
    old = [j for j in jobs if j["metadata"]["name"] != current]
    unfinished = [j["metadata"]["name"] for j in old if not _finished(j)]
    finished = sorted((j for j in old if _finished(j)),
                      key=lambda j: (j["metadata"].get("creationTimestamp", ""), j["metadata"]["name"]),
                      reverse=True)
    room = max(keep - (1 if current else 0), 0)
    return unfinished + [j["metadata"]["name"] for j in finished[room:]]


async def read_ingest_health(namespace: str, name: str, port: int) -> tuple[dict[str, Any] | None, str]:
    url = f"http://{name}-ingest.{namespace}.svc:{port}/healthz"
    try:
        timeout = aiohttp.ClientTimeout(total=HEALTH_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as session, session.get(url) as response:
            response.raise_for_status()
            return await response.json(content_type=None), f"read {url}"
    except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as e:
        return None, f"{url} unreachable from the operator: {e or type(e).__name__}"


async def _write_status(kube: Kube, body: dict[str, Any], status: dict[str, Any]) -> None:
    if status == body.get("status"):
        return
    meta = body["metadata"]
    await kube.apply({"apiVersion": body["apiVersion"], "kind": body["kind"],
                      "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
                      "status": status}, subresource="status")


async def _dry_run(kube: Kube, desired: list[dict[str, Any]]) -> None:
    """The API server validates every child before any is applied: all or nothing."""
    for obj in desired:
        try:
            await kube.apply(obj, dry_run=True)
        except ApiError as e:
            if e.invalid:
                raise InvalidSpec(f"{obj['kind']} {obj['metadata']['name']} refused by the API server: "
                                  f"{e.message}") from None
            raise


async def _children(kube: Kube, namespace: str, name: str) -> dict[tuple[str, str], dict[str, Any]]:
    selector = {"app.kubernetes.io/instance": name, "app.kubernetes.io/managed-by": MANAGER}
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for kind in CHILD_KINDS:
        for obj in await kube.list(kind, namespace, selector):
            found[(kind, obj["metadata"]["name"])] = obj
    return found


async def reconcile(kube: Kube, namespace: str, name: str, *, now: Callable[[], str] = utcnow,
                    read_health: HealthReader = read_ingest_health) -> Outcome:
    body = await kube.get("CobStack", namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return Outcome("gone")  # garbage collection removes the children through their owner refs
    meta, previous = body["metadata"], body.get("status") or {}
    generation = meta["generation"]
    children = await _children(kube, namespace, name)

    try:
        spec = parse_spec(body.get("spec"))
        desired = render(name, namespace, spec, meta["uid"])
        if not spec.paused:
            await _dry_run(kube, desired)
    except InvalidSpec as e:
        was = next((c for c in previous.get("conditions", []) if c["type"] == "InvalidSpec"), {})
        if was.get("status") != "True" or was.get("message") != str(e):
            await kube.event(body, "Warning", "InvalidSpec", str(e), now())
        await _write_status(kube, body, invalid_status(previous=previous, generation=generation,
                                                       message=str(e), now=now()))
        return Outcome("invalid", message=str(e))

    job_name = next((o["metadata"]["name"] for o in desired if o["kind"] == "Job"), None)
    if spec.paused:
        await _write_status(kube, body, build_status(name=name, spec=spec, generation=generation,
                                                     children=children, previous=previous, now=now(),
                                                     job_name=previous.get("trainerJob")))
        return Outcome("paused")

    applied: dict[tuple[str, str], dict[str, Any]] = {}
    changed, taken_back = [], []
    for obj in desired:
        key = (obj["kind"], obj["metadata"]["name"])
        # Read right before the apply: an edit between an earlier list and the apply would
        # otherwise be corrected without being seen.
        before = await kube.get(obj["kind"], namespace, obj["metadata"]["name"])
        applied[key] = after = await kube.apply(obj)
        if before is None or before["metadata"]["resourceVersion"] != after["metadata"]["resourceVersion"]:
            changed.append(f"{key[0]}/{key[1]}")
        if fingerprint(before) != fingerprint(after):
            taken_back.append(f"{key[0]}/{key[1]}")
    # With an unchanged spec, fields we had to take back were changed (or deleted) by someone else.
    drift = taken_back if previous.get("observedGeneration") == generation else []
    if drift:
        await kube.event(body, "Normal", "DriftCorrected", "restored " + ", ".join(drift), now())

    jobs = [obj for (kind, _), obj in children.items() if kind == "Job"]
    for old in jobs_to_delete(jobs, job_name, spec.trainer.history):
        await kube.delete("Job", namespace, old)
        del children[("Job", old)]

    observed = {**children, **applied}
    ingest = observed.get(("Deployment", f"{name}-ingest")) or {}
    if (ingest.get("status") or {}).get("availableReplicas", 0) > 0:
        health, note = await read_health(namespace, name, spec.stack.ingest.metrics_port)
    else:
        health, note = None, "ingest has no available pod to ask for venue health"
    await _write_status(kube, body, build_status(
        name=name, spec=spec, generation=generation, children=observed, previous=previous, now=now(),
        job_name=job_name, health=health, health_note=note))
    return Outcome("applied", changed=changed, drift=drift)

