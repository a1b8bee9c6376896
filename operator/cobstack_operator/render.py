"""CobStack spec -> the child manifests. Pure: no API calls, no clock, no randomness.

Given the same (name, namespace, spec, uid) it returns the same list of dicts, which the
handlers server-side-apply as they are. Every pod runs the one `cobstack` image command with the
one config file (the ConfigMap) and Pod Security "restricted" settings.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import yaml

from .spec import (API_VERSION, KIND, MAX_NAME_LENGTH, POD_BIND, CobStackSpec, InvalidSpec, Resources,
                   parse_spec)

CONFIG_DIR = "/etc/cobstack"
CONFIG_FILE = "config.yaml"
CONFIG_PATH = f"{CONFIG_DIR}/{CONFIG_FILE}"
CHECKPOINT_DIR = "/var/lib/cobstack"  # the trainer's working directory: its run files land on the PVC
HASH_ANNOTATION = "cobstack.dev/config-hash"
TRAINING_HASH_ANNOTATION = "cobstack.dev/training-hash"
MANAGER = "cobstack-operator"
REDIS_PORT = 6379
DASHBOARD_SERVICE_PORT = 80
IMAGE_UID = 10001  # the `cobstack` user of docker/Dockerfile
REDIS_UID = 999  # the `redis` user of the official image

# Top-level config keys each component reads: a change to any of them rolls exactly the
# components listed for it. A test fails when a Settings field is read by nobody here.
CONSUMES: dict[str, tuple[str, ...]] = {
    "ingest": ("symbols", "venues", "source", "endpoints", "ingest", "sim"),
    "dashboard": ("symbols", "venues", "dashboard"),
    "executor": ("symbols", "venues", "executor"),
    "trainer": ("symbols", "trainer"),
}
# How `cobstack` names each component's subcommand.
VERBS = {"ingest": "ingest", "dashboard": "dashboard", "executor": "execute", "trainer": "train"}

POD_SECURITY = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def content_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def labels(name: str, component: str) -> dict[str, str]:
    return {**selector(name, component), "app.kubernetes.io/part-of": "cobstack",
            "app.kubernetes.io/managed-by": MANAGER}


def selector(name: str, component: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": "cobstack", "app.kubernetes.io/instance": name,
            "app.kubernetes.io/component": component}


def owner_reference(name: str, uid: str) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "name": name, "uid": uid,
            "controller": True, "blockOwnerDeletion": True}


def component_config(spec: CobStackSpec) -> dict[str, Any]:
    """The config file every component reads: spec.stack plus the operator-owned binds."""
    config = spec.stack.model_dump(mode="json", exclude={"redis_url"})
    config["ingest"]["metrics_host"] = POD_BIND
    config["dashboard"]["host"] = POD_BIND
    return config


def config_hashes(config: dict[str, Any]) -> dict[str, str]:
    return {c: content_hash({k: config[k] for k in keys}) for c, keys in CONSUMES.items()}


class _Renderer:
    def __init__(self, name: str, namespace: str, spec: CobStackSpec, uid: str):
        self.name, self.namespace, self.spec = name, namespace, spec
        self.owner = owner_reference(name, uid)
        self.config = component_config(spec)
        self.hashes = config_hashes(self.config)

    # --- shared pieces ---------------------------------------------------------------------

    def meta(self, name: str, component: str, owned: bool = True, **extra: Any) -> dict[str, Any]:
        meta = {"name": name, "namespace": self.namespace, "labels": labels(self.name, component), **extra}
        if owned:
            meta["ownerReferences"] = [self.owner]
        return meta

    def redis_env(self) -> dict[str, Any]:
        redis = self.spec.redis
        if redis.managed:
            return {"name": "COBSTACK_REDIS_URL", "value": f"redis://{self.name}-redis:{REDIS_PORT}/0"}
        if redis.external_url:
            return {"name": "COBSTACK_REDIS_URL", "value": redis.external_url}
        ref = redis.external_secret
        return {"name": "COBSTACK_REDIS_URL", "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}

    def container(self, component: str, resources: Resources, image: str | None = None,
                  **extra: Any) -> dict[str, Any]:
        return {
            "name": component,
            "image": image or self.spec.images.cobstack,
            "imagePullPolicy": self.spec.images.pull_policy,
            "command": ["cobstack"],
            "args": [VERBS[component], "--config", CONFIG_PATH],
            # HOME on the /tmp emptyDir: libraries that cache under ~ find a writable place.
            "env": [self.redis_env(), {"name": "HOME", "value": "/tmp"}],
            "resources": render_resources(resources),
            "securityContext": CONTAINER_SECURITY,
            "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
                             {"name": "tmp", "mountPath": "/tmp"}],
            **extra,
        }

    def pod_spec(self, container: dict[str, Any], volumes: tuple[dict[str, Any], ...] = (),
                 **extra: Any) -> dict[str, Any]:
        return {
            "automountServiceAccountToken": False,  # no component talks to the Kubernetes API
            "enableServiceLinks": False,
            "securityContext": {**POD_SECURITY, "runAsUser": IMAGE_UID, "runAsGroup": IMAGE_UID,
                                "fsGroup": IMAGE_UID},
            "containers": [container],
            "volumes": [{"name": "config", "configMap": {"name": f"{self.name}-config"}},
                        {"name": "tmp", "emptyDir": {}}, *volumes],
            **extra,
        }

    def deployment(self, component: str, replicas: int, container: dict[str, Any],
                   strategy: str) -> dict[str, Any]:
        name = f"{self.name}-{component}"
        return {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": self.meta(name, component),
            "spec": {
                "replicas": replicas,
                "strategy": {"type": strategy},
                "selector": {"matchLabels": selector(self.name, component)},
                "template": {
                    "metadata": {"labels": labels(self.name, component),
                                 "annotations": {HASH_ANNOTATION: self.hashes[component]}},
                    "spec": self.pod_spec(container),
                },
            },
        }

    def service(self, component: str, port: int, target: str, **spec: Any) -> dict[str, Any]:
        return {
            "apiVersion": "v1", "kind": "Service",
            "metadata": self.meta(f"{self.name}-{component}", component),
            "spec": {"selector": selector(self.name, component),
                     "ports": [{"name": target, "port": port, "targetPort": target, "protocol": "TCP"}],
                     **spec},
        }

    # --- children --------------------------------------------------------------------------

    def config_map(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": self.meta(f"{self.name}-config", "config"),
            "data": {CONFIG_FILE: yaml.safe_dump(self.config, sort_keys=True)},
        }

    def redis(self) -> list[dict[str, Any]]:
        managed = self.spec.redis.managed
        if managed is None:
            return []
        name = f"{self.name}-redis"
        claim: dict[str, Any] = {"accessModes": ["ReadWriteOnce"],
                                 "resources": {"requests": {"storage": managed.storage}}}
        if managed.storage_class_name:
            claim["storageClassName"] = managed.storage_class_name
        container = {
            "name": "redis",
            "image": self.spec.images.redis,
            "imagePullPolicy": self.spec.images.pull_policy,
            # No config file, so bind every interface; protected mode would refuse other pods.
            # AOF only: the streams are the state, RDB snapshots would double the I/O.
            "command": ["redis-server", "--dir", "/data", "--appendonly", "yes", "--save", "",
                        "--protected-mode", "no", "--port", str(REDIS_PORT)],
            "ports": [{"name": "redis", "containerPort": REDIS_PORT, "protocol": "TCP"}],
            "readinessProbe": {"exec": {"command": ["redis-cli", "-p", str(REDIS_PORT), "ping"]},
                               "periodSeconds": 5, "timeoutSeconds": 3},
            "livenessProbe": {"tcpSocket": {"port": "redis"}, "periodSeconds": 10, "failureThreshold": 6},
            "resources": render_resources(managed.resources),
            "securityContext": CONTAINER_SECURITY,
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
        }
        statefulset = {
            "apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": self.meta(name, "redis"),
            "spec": {
                "replicas": 1,
                "serviceName": name,
                "selector": {"matchLabels": selector(self.name, "redis")},
                "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Delete", "whenScaled": "Retain"},
                "template": {
                    "metadata": {"labels": labels(self.name, "redis")},
                    "spec": {
                        "automountServiceAccountToken": False,
                        "enableServiceLinks": False,
                        "securityContext": {**POD_SECURITY, "runAsUser": REDIS_UID, "runAsGroup": REDIS_UID,
                                            "fsGroup": REDIS_UID},
                        "containers": [container],
                    },
                },
                "volumeClaimTemplates": [{
                    "apiVersion": "v1", "kind": "PersistentVolumeClaim",
                    "metadata": {"name": "data", "labels": labels(self.name, "redis")},
                    "spec": claim,
                }],
            },
        }
        # Headless: the one pod's own address, which the StatefulSet's serviceName needs anyway.
        return [self.service("redis", REDIS_PORT, "redis", clusterIP="None"), statefulset]

    def ingest(self) -> list[dict[str, Any]]:
        port = self.config["ingest"]["metrics_port"]
        probe = {"httpGet": {"path": "/healthz", "port": "metrics"}, "periodSeconds": 10,
                 "timeoutSeconds": 3, "failureThreshold": 6}
        container = self.container(
            "ingest", self.spec.ingest.resources,
            ports=[{"name": "metrics", "containerPort": port, "protocol": "TCP"}],
            # Ready means data flows: a live venue and a bus that accepts writes.
            readinessProbe={"httpGet": {"path": "/readyz", "port": "metrics"}, "periodSeconds": 5,
                            "timeoutSeconds": 3},
            livenessProbe=probe,
            startupProbe={**probe, "periodSeconds": 2, "failureThreshold": 60},
        )
        # Recreate: a rolling update would run two writers of the same streams for a while.
        return [self.service("ingest", port, "metrics"),
                self.deployment("ingest", self.spec.ingest.replicas, container, "Recreate")]

    def dashboard(self) -> list[dict[str, Any]]:
        probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10, "timeoutSeconds": 3}
        container = self.container(
            "dashboard", self.spec.dashboard.resources,
            ports=[{"name": "http", "containerPort": self.config["dashboard"]["port"], "protocol": "TCP"}],
            readinessProbe=probe, livenessProbe={**probe, "failureThreshold": 6},
        )
        return [self.service("dashboard", DASHBOARD_SERVICE_PORT, "http", type=self.spec.dashboard.service_type),
                self.deployment("dashboard", self.spec.dashboard.replicas, container, "RollingUpdate")]

    def executor(self) -> list[dict[str, Any]]:
        container = self.container("executor", self.spec.executor.resources)
        return [self.deployment("executor", self.spec.executor.replicas, container, "Recreate")]

    def trainer(self) -> list[dict[str, Any]]:
        trainer = self.spec.trainer
        if not trainer.enabled:
            return []
        claim_name = f"{self.name}-checkpoints"
        claim: dict[str, Any] = {"accessModes": ["ReadWriteOnce"],
                                 "resources": {"requests": {"storage": trainer.checkpoint.size}}}
        if trainer.checkpoint.storage_class_name:
            claim["storageClassName"] = trainer.checkpoint.storage_class_name
        pvc = {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            # Retain: no owner, so garbage collection leaves the checkpoints behind.
            "metadata": self.meta(claim_name, "trainer", owned=trainer.checkpoint.reclaim_policy == "Delete"),
            "spec": claim,
        }
        resources = render_resources(trainer.resources)
        if trainer.gpus:
            resources.setdefault("limits", {})["nvidia.com/gpu"] = trainer.gpus
        container = self.container(
            "trainer", trainer.resources, image=self.spec.images.trainer,
            workingDir=CHECKPOINT_DIR,
        )
        container["resources"] = resources
        # A Job must finish: train, evaluate, write the report, exit 0 (Succeeded). Live
        # signals are the online mode's, which `cobstack up` runs.
        container["args"] += ["--set", "trainer.mode=job"]
        container["volumeMounts"] += [{"name": "checkpoints", "mountPath": CHECKPOINT_DIR},
                                      {"name": "dshm", "mountPath": "/dev/shm"}]
        scheduling: dict[str, Any] = {}
        if trainer.node_selector:
            scheduling["nodeSelector"] = dict(trainer.node_selector)
        if trainer.tolerations:
            scheduling["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in trainer.tolerations]
        if trainer.affinity:
            scheduling["affinity"] = trainer.affinity.model_dump(by_alias=True, exclude_none=True,
                                                                 exclude_defaults=True)
        if trainer.runtime_class_name:
            scheduling["runtimeClassName"] = trainer.runtime_class_name
        pod = self.pod_spec(container, restartPolicy="Never", **scheduling, volumes=(
            {"name": "checkpoints", "persistentVolumeClaim": {"claimName": claim_name}},
            {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": trainer.shm_size}},
        ))
        job_spec: dict[str, Any] = {
            "backoffLimit": trainer.backoff_limit,
            "podFailurePolicy": {"rules": [
                # `cobstack` exits 2 on an invalid config: retrying cannot help.
                {"action": "FailJob", "onExitCodes": {"containerName": "trainer", "operator": "In", "values": [2]}},
                # Evictions and preemptions are not the trainer's fault: retry without counting.
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
            ]},
            "template": {
                "metadata": {"labels": labels(self.name, "trainer"),
                             "annotations": {HASH_ANNOTATION: self.hashes["trainer"]}},
                "spec": pod,
            },
        }
        if trainer.active_deadline_seconds:
            job_spec["activeDeadlineSeconds"] = trainer.active_deadline_seconds
        # Jobs are immutable: everything but `suspend` names the Job, so a change makes a new one.
        training_hash = content_hash(job_spec)
        job = {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": self.meta(f"{self.name}-train-{training_hash[:10]}", "trainer",
                                  annotations={TRAINING_HASH_ANNOTATION: training_hash}),
            "spec": {**job_spec, "suspend": trainer.suspend},
        }
        return [pvc, job]


def render_resources(resources: Resources) -> dict[str, Any]:
    out = resources.model_dump(by_alias=True, exclude_none=True)
    return {k: v for k, v in out.items() if v}


def render(name: str, namespace: str, spec: CobStackSpec | dict[str, Any] | None, uid: str) -> list[dict[str, Any]]:
    """Every child of one CobStack, in apply order; InvalidSpec when it cannot be run."""
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidSpec(f"metadata.name {name!r} is longer than {MAX_NAME_LENGTH} characters")
    if not isinstance(spec, CobStackSpec):
        spec = parse_spec(spec)
    for section, key in (("ingest", "metrics_port"), ("dashboard", "port")):
        if not getattr(getattr(spec.stack, section), key):
            raise InvalidSpec(f"spec.stack.{section}.{key} is 0: the pod's probes and Service need the port")
    r = _Renderer(name, namespace, spec, uid)
    return [r.config_map(), *r.redis(), *r.ingest(), *r.dashboard(), *r.executor(), *r.trainer()]
