"""kopf wiring: which watch events cause a reconcile. Thin; the work is in reconcile.py.

Every trigger funnels into `Reconciler.trigger(namespace, name)`, which runs at most one
reconcile per CobStack at a time and coalesces whatever arrives meanwhile into one more run.
Triggers: a CobStack's new generation (or first sight after start), any event on a labelled
child (edited, deleted, status changed), a periodic resync, and a backoff retry after errors.
Only kopf's event handlers are used: no progress annotations, no finalizers, nothing written
to the CobStack except its status.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field

import kopf
from prometheus_client import Counter, Histogram

from .kube import CHILD_KINDS, KINDS, ApiError, Kube
from .reconcile import reconcile
from .render import MANAGER
from .spec import GROUP, PLURAL, VERSION

log = logging.getLogger("cobstack_operator")

RECONCILES = Counter("cobstack_operator_reconciles_total", "Reconciles by result", ["result"])
ERRORS = Counter("cobstack_operator_reconcile_errors_total", "Reconciles that raised", ["error"])
DRIFT = Counter("cobstack_operator_drift_corrections_total", "Children restored after a manual change")
DURATION = Histogram("cobstack_operator_reconcile_duration_seconds", "Time per reconcile",
                     buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
RETRY_BASE_S, RETRY_MAX_S = 1.0, 60.0

Key = tuple[str, str]  # (namespace, name)


@dataclass
class _Slot:
    dirty: bool = False
    task: asyncio.Task | None = None
    failures: int = 0
    generation: int | None = None  # last generation that triggered a reconcile


@dataclass
class Reconciler:
    kube: Kube
    slots: dict[Key, _Slot] = field(default_factory=dict)

    def known(self, key: Key) -> bool:
        return key in self.slots

    def new_generation(self, key: Key, generation: int | None) -> bool:
        """True once per generation: the operator's own status writes do not bump it."""
        slot = self.slots.setdefault(key, _Slot())
        fresh = slot.generation != generation
        slot.generation = generation
        return fresh

    def trigger(self, key: Key) -> None:
        slot = self.slots.get(key)
        if slot is None:
            return  # forgotten (deleted) meanwhile
        slot.dirty = True
        if slot.task is None or slot.task.done():
            slot.task = asyncio.get_running_loop().create_task(self._run(key, slot))

    def forget(self, key: Key) -> None:
        slot = self.slots.pop(key, None)
        if slot and slot.task:
            slot.task.cancel()

    async def _run(self, key: Key, slot: _Slot) -> None:
        while slot.dirty:
            slot.dirty = False
            started = time.monotonic()
            try:
                outcome = await reconcile(self.kube, *key)
            except ApiError as e:
                if e.namespace_terminating:  # the CobStack goes with its namespace: nothing to do
                    log.info("%s/%s: namespace is terminating, not reconciling", *key)
                    return
                self._retry(key, slot, e, traceback=False)
                return
            except Exception as e:  # a bug or an outage: count, say where, retry with backoff
                self._retry(key, slot, e, traceback=not isinstance(e, OSError))
                return
            finally:
                DURATION.observe(time.monotonic() - started)
            slot.failures = 0
            RECONCILES.labels(outcome.result).inc()
            if outcome.drift:
                DRIFT.inc(len(outcome.drift))
                log.warning("%s/%s: drift corrected: %s", *key, ", ".join(outcome.drift))
            elif outcome.changed:
                log.info("%s/%s: applied %s", *key, ", ".join(outcome.changed))

    def _retry(self, key: Key, slot: _Slot, error: Exception, traceback: bool) -> None:
        ERRORS.labels(type(error).__name__).inc()
        slot.failures += 1
        delay = min(RETRY_BASE_S * 2 ** slot.failures, RETRY_MAX_S) * random.uniform(0.8, 1.2)
        log.error("reconcile %s/%s failed (attempt %d), retrying in %.0f s: %s",
                  *key, slot.failures, delay, error, exc_info=traceback)
        asyncio.get_running_loop().call_later(delay, self.trigger, key)

    async def resync_forever(self, interval_s: float) -> None:
        """Level-triggered safety net: refreshes status (venue health) and catches missed events."""
        while True:
            await asyncio.sleep(interval_s)
            for key in list(self.slots):
                self.trigger(key)


def register(registry: kopf.OperatorRegistry, reconciler: Reconciler) -> None:
    @kopf.on.login(registry=registry)
    def login(**kwargs) -> kopf.ConnectionInfo | None:  # in-cluster token, else KUBECONFIG
        return kopf.login_via_client(**kwargs)

    @kopf.on.event(group=GROUP, version=VERSION, plural=PLURAL, registry=registry)
    async def cobstack_event(event: kopf.RawEvent, body: kopf.Body, **_) -> None:
        key = (body.metadata.namespace, body.metadata.name)
        if event["type"] == "DELETED":
            reconciler.forget(key)
        elif reconciler.new_generation(key, body.metadata.get("generation")):
            reconciler.trigger(key)

    async def child_event(body: kopf.Body, **_) -> None:
        owner = body.metadata.labels.get("app.kubernetes.io/instance")
        key = (body.metadata.namespace, owner)
        if owner and reconciler.known(key):
            reconciler.trigger(key)

    for kind in CHILD_KINDS:
        k = KINDS[kind]
        group, _, version = k.api_version.rpartition("/")
        kopf.on.event(group=group, version=version, plural=k.plural, registry=registry, id=f"child-{k.plural}",
                      labels={"app.kubernetes.io/managed-by": MANAGER})(child_event)


def configure(settings: kopf.OperatorSettings) -> None:
    # The watched resources are fixed: no CRD or namespace discovery (and no RBAC for it).
    settings.scanning.disabled = True
    settings.peering.standalone = True
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
