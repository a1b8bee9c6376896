"""The CobStack custom resource, as pydantic models: the one source of the CRD schema.

`spec.stack` IS the component config file: the same `cobstack.config.Settings` model the
components load from YAML/env/flags, with the same snake_case keys, minus the few fields the
operator owns (bind addresses, the Redis URL). Everything else in the spec is Kubernetes
plumbing in Kubernetes' own camelCase. `crdgen.py` turns these models into the CRD; CEL rules
that the schema alone cannot say live next to the fields they guard, as `x-kubernetes-validations`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel
from pydantic_settings import PydanticBaseSettingsSource

from cobstack.config import Settings

GROUP = "cobstack.dev"
VERSION = "v1alpha1"
KIND = "CobStack"
PLURAL = "cobstacks"
API_VERSION = f"{GROUP}/{VERSION}"
# Children are named <name>-<component>[-<hash>]; the Job name also becomes a pod label (<= 63).
MAX_NAME_LENGTH = 40


class InvalidSpec(ValueError):
    """A spec the API server accepted but the operator cannot run; nothing is applied."""


def _cel(rule: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"rule": rule, "message": message, **extra}


def _immutable(what: str) -> dict[str, Any]:
    return {"x-kubernetes-validations": [_cel("self == oldSelf", f"{what} is immutable")]}


# --- the component config (spec.stack) -----------------------------------------------------

# Set by the operator, not the user: in a pod the servers must bind every interface, and the
# bus URL comes from spec.redis (possibly a Secret). Dotted paths into Settings.
OPERATOR_OWNED = ("redis_url", "ingest.metrics_host", "dashboard.host")
POD_BIND = "0.0.0.0"


class StackConfig(Settings):
    """Settings validated from the spec alone: the operator's own environment and config file
    must never leak into a stack it renders."""

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


# Rules on the generated stack schema. The ports back the pods' probes and the Service.
STACK_VALIDATIONS = [
    _cel("!has(self.ingest) || self.ingest.metrics_port != 0",
         "stack.ingest.metrics_port 0 disables the health endpoint the ingest pod's probes use"),
    _cel("!has(self.dashboard) || self.dashboard.port != 0", "stack.dashboard.port 0 leaves the dashboard Service nothing to reach"),
]

# --- Kubernetes plumbing -------------------------------------------------------------------

QUANTITY_PATTERN = (r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
                    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$")
# int-or-string like Kubernetes' resource.Quantity ("500m", "1Gi", 2).
Quantity = Annotated[int | Annotated[str, Field(pattern=QUANTITY_PATTERN)], Field()]
DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"


class K8sModel(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


class ResourceList(K8sModel):
    cpu: Quantity | None = None
    memory: Quantity | None = None
    ephemeral_storage: Quantity | None = Field(None, alias="ephemeral-storage")


class Resources(K8sModel):
    requests: ResourceList = Field(default_factory=ResourceList)
    limits: ResourceList = Field(default_factory=ResourceList)


def _resources(cpu: str, memory: str, cpu_limit: str | None = None, memory_limit: str | None = None):
    return lambda: Resources(requests=ResourceList(cpu=cpu, memory=memory),
                             limits=ResourceList(cpu=cpu_limit, memory=memory_limit or memory))


class Images(K8sModel):
    cobstack: str = Field("ghcr.io/cobstack/cobstack:0.1.0", min_length=1, description=(
        "CPU image (docker/Dockerfile): ingest, dashboard and executor."))
    trainer: str = Field("ghcr.io/cobstack/cobstack-gpu:0.1.0", min_length=1, description=(
        "Trainer image (docker/Dockerfile.gpu); the CPU image also trains, for `gpus: 0`."))
    redis: str = Field("redis:7.2", min_length=1, description="Image of the managed Redis.")
    pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"


class ManagedRedis(K8sModel):
    storage: Quantity = Field("1Gi", json_schema_extra=_immutable("redis.managed.storage"),
                              description="Size of the Redis data volume (a StatefulSet volume claim).")
    storage_class_name: str | None = Field(None, json_schema_extra=_immutable("redis.managed.storageClassName"))
    resources: Resources = Field(default_factory=_resources("100m", "256Mi"))


class SecretKeyRef(K8sModel):
    name: str = Field(min_length=1, max_length=253, description="Secret in the CobStack's namespace.")
    key: str = Field("url", min_length=1, max_length=253, description="Key holding the redis:// URL.")


class Redis(K8sModel):
    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [
        _cel("[has(self.managed), has(self.externalUrl), has(self.externalSecret)]"
             ".filter(x, x).size() == 1",
             "set exactly one of redis.managed, redis.externalUrl, redis.externalSecret"),
        _cel("has(self.managed) == has(oldSelf.managed)",
             "redis mode (managed or external) is immutable: delete and recreate the CobStack to switch"),
    ]})

    managed: ManagedRedis | None = Field(None, description="A single-replica Redis StatefulSet the operator runs.")
    external_url: str | None = Field(None, pattern=r"^rediss?://", max_length=2048,
                                     description="redis:// URL of a Redis the operator does not manage.")
    external_secret: SecretKeyRef | None = Field(None, description="Secret key holding the external redis:// URL.")

    @model_validator(mode="after")
    def _exactly_one(self) -> Redis:
        if sum(x is not None for x in (self.managed, self.external_url, self.external_secret)) != 1:
            raise ValueError("set exactly one of redis.managed, redis.externalUrl, redis.externalSecret")
        return self

    @property
    def mode(self) -> str:
        return "managed" if self.managed else "external"


class Ingest(K8sModel):
    replicas: int = Field(1, ge=0, le=1, description=(
        "0 or 1: each stream has exactly one writer, so ingest never runs twice."))
    resources: Resources = Field(default_factory=_resources("250m", "256Mi"))


class Executor(K8sModel):
    replicas: int = Field(1, ge=0, le=1, description="0 or 1: one executor owns the paper account and its fills.")
    resources: Resources = Field(default_factory=_resources("100m", "192Mi"))


class Dashboard(K8sModel):
    replicas: int = Field(1, ge=0, le=10, description="Stateless readers of the streams; scale freely.")
    service_type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    resources: Resources = Field(default_factory=_resources("100m", "192Mi"))


# The Kubernetes scheduling types the trainer takes, modelled so the schema stays structural.

class Toleration(K8sModel):
    key: str | None = None
    operator: Literal["Exists", "Equal"] = "Equal"
    value: str | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class SelectorRequirement(K8sModel):
    key: str = Field(min_length=1)
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"]
    values: list[str] = Field(default_factory=list)


class NodeSelectorTerm(K8sModel):
    match_expressions: list[SelectorRequirement] = Field(default_factory=list)
    match_fields: list[SelectorRequirement] = Field(default_factory=list)


class NodeSelector(K8sModel):
    node_selector_terms: list[NodeSelectorTerm] = Field(min_length=1)


class PreferredSchedulingTerm(K8sModel):
    weight: int = Field(ge=1, le=100)
    preference: NodeSelectorTerm


class NodeAffinity(K8sModel):
    required_during_scheduling_ignored_during_execution: NodeSelector | None = None
    preferred_during_scheduling_ignored_during_execution: list[PreferredSchedulingTerm] = Field(default_factory=list)


class LabelSelector(K8sModel):
    match_labels: dict[str, str] = Field(default_factory=dict)
    match_expressions: list[SelectorRequirement] = Field(default_factory=list)


class PodAffinityTerm(K8sModel):
    label_selector: LabelSelector | None = None
    namespace_selector: LabelSelector | None = None
    namespaces: list[str] = Field(default_factory=list)
    topology_key: str = Field(min_length=1)


class WeightedPodAffinityTerm(K8sModel):
    weight: int = Field(ge=1, le=100)
    pod_affinity_term: PodAffinityTerm


class PodAffinity(K8sModel):
    required_during_scheduling_ignored_during_execution: list[PodAffinityTerm] = Field(default_factory=list)
    preferred_during_scheduling_ignored_during_execution: list[WeightedPodAffinityTerm] = Field(default_factory=list)


class Affinity(K8sModel):
    node_affinity: NodeAffinity | None = None
    pod_affinity: PodAffinity | None = None
    pod_anti_affinity: PodAffinity | None = None


class Checkpoint(K8sModel):
    size: Quantity = Field("5Gi", json_schema_extra=_immutable("trainer.checkpoint.size"))
    storage_class_name: str | None = Field(None, json_schema_extra=_immutable("trainer.checkpoint.storageClassName"))
    reclaim_policy: Literal["Retain", "Delete"] = Field("Retain", description=(
        "Retain keeps the checkpoint volume claim when the CobStack is deleted; Delete lets it go with it."))


class Trainer(K8sModel):
    enabled: bool = True
    gpus: int = Field(1, ge=0, le=16, description=(
        "nvidia.com/gpu limit of the training pod; 0 trains on CPU (kind, laptops)."))
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[Toleration] = Field(default_factory=list, max_length=32)
    affinity: Affinity | None = None
    runtime_class_name: str | None = Field(None, pattern=DNS_LABEL, max_length=63,
                                           description="e.g. `nvidia` where the GPU runtime is not the default.")
    shm_size: Quantity = Field("1Gi", description="Size of /dev/shm (a memory emptyDir) for data-loader workers.")
    backoff_limit: int = Field(3, ge=0, le=100)
    active_deadline_seconds: int | None = Field(None, ge=1)
    suspend: bool = Field(False, description="Suspends the current training Job (Job.spec.suspend).")
    history: int = Field(3, ge=1, le=20, description=(
        "Finished training Jobs kept; a training change creates a new Job, older ones are deleted."))
    checkpoint: Checkpoint = Field(default_factory=Checkpoint)
    resources: Resources = Field(default_factory=_resources("1", "2Gi"))


class CobStackSpec(K8sModel):
    model_config = ConfigDict(json_schema_extra={"description": (
        "One consolidated-order-book stack: Redis, one ingest, trainer Job, executor and dashboard.")})

    paused: bool = Field(False, description="Stop reconciling: children are left exactly as they are.")
    images: Images = Field(default_factory=Images)
    redis: Redis = Field(default_factory=lambda: Redis(managed=ManagedRedis()))
    ingest: Ingest = Field(default_factory=Ingest)
    dashboard: Dashboard = Field(default_factory=Dashboard)
    executor: Executor = Field(default_factory=Executor)
    trainer: Trainer = Field(default_factory=Trainer)
    stack: StackConfig = Field(default_factory=StackConfig, description=(
        "The component config file (same keys as config.yaml and COBSTACK_* variables)."))


# --- status --------------------------------------------------------------------------------

class Condition(K8sModel):
    type: str
    status: Literal["True", "False", "Unknown"]
    observed_generation: int | None = None
    reason: str
    message: str = ""
    last_transition_time: str = Field(json_schema_extra={"format": "date-time"})


class ComponentStatus(K8sModel):
    ready: int = 0
    desired: int = 0


class VenueHealth(K8sModel):
    state: str
    last_message_age_ms: int | None = None
    resyncs: int = 0


class Streams(K8sModel):
    bus: str = Field(description="Where the streams live: host:port of the managed Redis, or `external`.")
    snapshots_published: dict[str, int] = Field(default_factory=dict, description=(
        "Snapshots published per symbol, as ingest reported them (empty until ingest answers)."))
    bus_up: bool | None = Field(None, description="Ingest's view of the bus; unset until ingest answers.")


class CobStackStatus(K8sModel):
    observed_generation: int | None = None
    phase: Literal["Pending", "Progressing", "Ready", "Failed", "Paused", "Invalid"] | None = None
    conditions: list[Condition] = Field(default_factory=list, json_schema_extra={
        "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]})
    venues: int | None = Field(None, description="Venues configured.")
    symbols: int | None = Field(None, description="Symbols configured.")
    training: str | None = Field(None, description="Training Job state: Running, Succeeded, Failed, Suspended, ...")
    trainer_job: str | None = None
    components: dict[str, ComponentStatus] = Field(default_factory=dict)
    streams: Streams | None = None
    venue_health: dict[str, VenueHealth] = Field(default_factory=dict, description=(
        "Per-venue state from ingest's /healthz; empty when ingest cannot be reached."))
    health_probe: str | None = Field(None, description="Result of the last read of ingest's /healthz.")


def parse_spec(spec: dict[str, Any] | None) -> CobStackSpec:
    """The typed spec, or InvalidSpec naming every offending field (spec.<path>: <why>)."""
    try:
        parsed = CobStackSpec.model_validate(spec or {})
    except ValidationError as e:
        problems = "; ".join(
            f"spec.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors())
        raise InvalidSpec(problems) from None
    owned = [path for path in OPERATOR_OWNED if _is_set(parsed.stack, path)]
    if owned:
        raise InvalidSpec(f"spec.stack.{', spec.stack.'.join(owned)}: set by the operator, remove from the spec")
    return parsed


def _is_set(model: BaseModel, dotted: str) -> bool:
    *parents, leaf = dotted.split(".")
    for part in parents:
        if part not in model.model_fields_set:
            return False
        model = getattr(model, part)
    return leaf in model.model_fields_set
