"""render(): every child of a CobStack, as the API server will receive it."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import yaml

from cobstack.config import Settings
from cobstack_operator.render import (CONFIG_PATH, CONSUMES, HASH_ANNOTATION, TRAINING_HASH_ANNOTATION,
                                      render)
from cobstack_operator.spec import InvalidSpec, parse_spec

UID = "0b0b0b0b-1111-2222-3333-444444444444"


def children(spec: dict[str, Any] | None = None, name: str = "demo") -> dict[tuple[str, str], dict[str, Any]]:
    return {(o["kind"], o["metadata"]["name"]): o for o in render(name, "markets", spec or {}, UID)}


def pod(obj: dict[str, Any]) -> dict[str, Any]:
    return obj["spec"]["template"]["spec"]


def container(obj: dict[str, Any]) -> dict[str, Any]:
    (c,) = pod(obj)["containers"]
    return c


def template_hashes(objs: dict) -> dict[str, str]:
    return {n: o["spec"]["template"]["metadata"]["annotations"][HASH_ANNOTATION]
            for (k, n), o in objs.items() if k == "Deployment"}


def the_job(objs: dict) -> dict[str, Any]:
    (job,) = [o for (k, _), o in objs.items() if k == "Job"]
    return job


def test_default_spec_renders_every_child():
    objs = children()
    names = {k for k in objs if k[0] != "Job"}
    assert names == {
        ("ConfigMap", "demo-config"), ("Service", "demo-redis"), ("StatefulSet", "demo-redis"),
        ("Service", "demo-ingest"), ("Deployment", "demo-ingest"), ("Service", "demo-dashboard"),
        ("Deployment", "demo-dashboard"), ("Deployment", "demo-executor"),
        ("PersistentVolumeClaim", "demo-checkpoints"),
    }
    assert the_job(objs)["metadata"]["name"].startswith("demo-train-")


def test_owner_references_and_labels_on_every_child():
    for (kind, name), obj in children().items():
        meta = obj["metadata"]
        assert meta["namespace"] == "markets"
        labels = meta["labels"]
        assert labels["app.kubernetes.io/instance"] == "demo"
        assert labels["app.kubernetes.io/managed-by"] == "cobstack-operator"
        assert labels["app.kubernetes.io/name"] == "cobstack"
        assert labels["app.kubernetes.io/part-of"] == "cobstack"
        if kind == "PersistentVolumeClaim":
            assert "ownerReferences" not in meta, "Retain (the default) keeps checkpoints past the CobStack"
            continue
        (ref,) = meta["ownerReferences"]
        assert ref == {"apiVersion": "cobstack.dev/v1alpha1", "kind": "CobStack", "name": "demo",
                       "uid": UID, "controller": True, "blockOwnerDeletion": True}


def test_checkpoint_claim_owned_only_with_delete_policy():
    objs = children({"trainer": {"checkpoint": {"reclaimPolicy": "Delete"}}})
    assert objs[("PersistentVolumeClaim", "demo-checkpoints")]["metadata"]["ownerReferences"][0]["uid"] == UID


def test_every_pod_is_pod_security_restricted():
    for (kind, name), obj in children().items():
        if kind not in ("Deployment", "StatefulSet", "Job"):
            continue
        spec = pod(obj)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["securityContext"]["runAsUser"] > 0
        assert spec["automountServiceAccountToken"] is False
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["capabilities"] == {"drop": ["ALL"]}
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        if kind != "StatefulSet":  # the components write temp files; redis only writes /data
            assert volumes["tmp"] == {"name": "tmp", "emptyDir": {}}


def test_components_run_the_cobstack_command_with_the_config_file():
    objs = children({"images": {"cobstack": "reg.example/cob:1", "trainer": "reg.example/cob-gpu:1",
                                "pullPolicy": "Always"}})
    expected = {"demo-ingest": "ingest", "demo-dashboard": "dashboard", "demo-executor": "execute"}
    for name, verb in expected.items():
        c = container(objs[("Deployment", name)])
        assert c["command"] == ["cobstack"]
        assert c["args"] == [verb, "--config", CONFIG_PATH]
        assert c["image"] == "reg.example/cob:1"
        assert c["imagePullPolicy"] == "Always"
        env = {e["name"]: e for e in c["env"]}
        assert env["COBSTACK_REDIS_URL"]["value"] == "redis://demo-redis:6379/0"
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        assert mounts["/etc/cobstack"]["readOnly"] is True
    trainer = container(the_job(objs))
    assert trainer["args"] == ["train", "--config", CONFIG_PATH, "--set", "trainer.mode=job"]  # a Job finishes
    assert trainer["image"] == "reg.example/cob-gpu:1"


def test_config_map_is_the_stack_with_pod_binds_and_loads_as_settings():
    objs = children({"stack": {"symbols": ["BTC-USD"], "venues": ["coinbase"],
                               "ingest": {"publish_interval_ms": 250}}})
    text = objs[("ConfigMap", "demo-config")]["data"]["config.yaml"]
    config = yaml.safe_load(text)
    settings = Settings.model_validate(config)  # the components' own model accepts it as it is
    assert settings.symbols == ["BTC-USD"] and settings.venues == ["coinbase"]
    assert settings.ingest.publish_interval_ms == 250
    assert settings.ingest.metrics_host == "0.0.0.0" and settings.dashboard.host == "0.0.0.0"
    assert "redis_url" not in config, "the bus URL travels in env (possibly from a Secret), never in the file"


def test_probes_and_ports_follow_the_config():
    objs = children({"stack": {"ingest": {"metrics_port": 9200}, "dashboard": {"port": 8100}}})
    ingest = container(objs[("Deployment", "demo-ingest")])
    assert ingest["ports"] == [{"name": "metrics", "containerPort": 9200, "protocol": "TCP"}]
    assert ingest["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    assert ingest["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert objs[("Service", "demo-ingest")]["spec"]["ports"][0]["port"] == 9200
    dash = container(objs[("Deployment", "demo-dashboard")])
    assert dash["ports"][0]["containerPort"] == 8100
    assert dash["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    svc = objs[("Service", "demo-dashboard")]["spec"]
    assert svc["ports"][0] == {"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}
    assert svc["type"] == "ClusterIP"


def test_resources_and_replicas_from_the_spec():
    objs = children({"ingest": {"resources": {"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"memory": 2}}},
                     "dashboard": {"replicas": 3}, "executor": {"replicas": 0}})
    ingest = objs[("Deployment", "demo-ingest")]
    assert container(ingest)["resources"] == {"requests": {"cpu": "2", "memory": "1Gi"}, "limits": {"memory": 2}}
    assert ingest["spec"]["replicas"] == 1
    assert ingest["spec"]["strategy"] == {"type": "Recreate"}, "never two writers of one stream"
    assert objs[("Deployment", "demo-dashboard")]["spec"]["replicas"] == 3
    assert objs[("Deployment", "demo-executor")]["spec"]["replicas"] == 0


def test_managed_redis_statefulset():
    objs = children({"redis": {"managed": {"storage": "8Gi", "storageClassName": "fast"}}})
    sts = objs[("StatefulSet", "demo-redis")]
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == "8Gi"
    assert claim["spec"]["storageClassName"] == "fast"
    assert sts["spec"]["serviceName"] == "demo-redis"
    assert objs[("Service", "demo-redis")]["spec"]["clusterIP"] == "None"
    assert "--protected-mode" in container(sts)["command"]


@pytest.mark.parametrize("redis, env", [
    ({"externalUrl": "redis://cache.example:6379/2"}, {"name": "COBSTACK_REDIS_URL", "value": "redis://cache.example:6379/2"}),
    ({"externalSecret": {"name": "bus", "key": "uri"}},
     {"name": "COBSTACK_REDIS_URL", "valueFrom": {"secretKeyRef": {"name": "bus", "key": "uri"}}}),
])
def test_external_redis_renders_no_redis_and_passes_the_url(redis, env):
    objs = children({"redis": redis})
    assert not [k for k in objs if "redis" in k[1]]
    for (kind, _), obj in objs.items():
        if kind in ("Deployment", "Job"):
            assert env in container(obj)["env"]


def test_gpus_zero_runs_on_cpu_and_gpus_set_the_limit():
    cpu = container(the_job(children({"trainer": {"gpus": 0}})))
    assert "nvidia.com/gpu" not in str(cpu["resources"])
    gpu = container(the_job(children({"trainer": {"gpus": 2}})))
    assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 2


def test_trainer_job_scheduling_shm_checkpoints_and_failure_policy():
    job = the_job(children({"trainer": {
        "nodeSelector": {"gpu": "a100"}, "runtimeClassName": "nvidia", "shmSize": "4Gi", "backoffLimit": 5,
        "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]}}},
    }}))
    spec = pod(job)
    assert spec["restartPolicy"] == "Never"
    assert spec["nodeSelector"] == {"gpu": "a100"}
    assert spec["runtimeClassName"] == "nvidia"
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"][0]["matchExpressions"][0] == {"key": "zone", "operator": "In", "values": ["a"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": "4Gi"}
    assert volumes["checkpoints"]["persistentVolumeClaim"]["claimName"] == "demo-checkpoints"
    mounts = {m["name"]: m["mountPath"] for m in container(job)["volumeMounts"]}
    assert mounts["dshm"] == "/dev/shm"
    assert container(job)["workingDir"] == mounts["checkpoints"]
    assert job["spec"]["backoffLimit"] == 5
    actions = {r["action"] for r in job["spec"]["podFailurePolicy"]["rules"]}
    assert actions == {"FailJob", "Ignore"}


def test_suspend_maps_to_the_same_job():
    running, suspended = (the_job(children({"trainer": {"suspend": s}})) for s in (False, True))
    assert running["metadata"]["name"] == suspended["metadata"]["name"]
    assert (running["spec"]["suspend"], suspended["spec"]["suspend"]) == (False, True)


def test_training_change_renames_the_job_and_other_changes_do_not():
    base = the_job(children())
    for change in ({"trainer": {"gpus": 2}}, {"stack": {"trainer": {"preset": "base"}}},
                   {"images": {"trainer": "other:1"}}):
        renamed = the_job(children(change))
        assert renamed["metadata"]["name"] != base["metadata"]["name"], change
        assert renamed["metadata"]["annotations"][TRAINING_HASH_ANNOTATION] != \
            base["metadata"]["annotations"][TRAINING_HASH_ANNOTATION]
    for change in ({"dashboard": {"replicas": 2}}, {"stack": {"ingest": {"publish_interval_ms": 50}}},
                   {"trainer": {"history": 5}}):
        assert the_job(children(change))["metadata"]["name"] == base["metadata"]["name"], change


@pytest.mark.parametrize("change, rolled", [
    ({"ingest": {"publish_interval_ms": 50}}, {"demo-ingest"}),
    ({"sim": {"seed": 9}}, {"demo-ingest"}),
    ({"dashboard": {"port": 8100}}, {"demo-dashboard"}),
    ({"executor": {"mode": "paper"}, "trainer": {"preset": "xl"}}, set()),  # paper is the default
    ({"symbols": ["BTC-USD"]}, {"demo-ingest", "demo-dashboard", "demo-executor"}),
])
def test_config_hash_changes_only_for_the_components_that_read_the_change(change, rolled):
    before = template_hashes(children())
    after = template_hashes(children({"stack": change}))
    assert {n for n in before if before[n] != after[n]} == rolled


def test_every_settings_field_is_read_by_some_component():
    consumed = {k for keys in CONSUMES.values() for k in keys}
    assert set(Settings.model_fields) - consumed == {"redis_url"}, \
        "a new Settings field must be added to CONSUMES so changing it rolls the right pods"


def test_disabled_trainer_renders_no_job_or_claim():
    objs = children({"trainer": {"enabled": False}})
    assert not [k for k in objs if k[0] in ("Job", "PersistentVolumeClaim")]


def test_render_is_deterministic():
    spec = {"stack": {"symbols": ["ETH-USD", "BTC-USD"]}}
    assert render("demo", "ns", copy.deepcopy(spec), UID) == render("demo", "ns", spec, UID)


@pytest.mark.parametrize("spec, where", [
    ({"stack": {"symbols": ["BTCUSD"]}}, "spec.stack.symbols"),
    ({"stack": {"venues": ["nope"]}}, "spec.stack.venues"),
    ({"stack": {"redis_url": "redis://x"}}, "spec.stack.redis_url"),
    ({"stack": {"dashboard": {"host": "127.0.0.1"}}}, "spec.stack.dashboard.host"),
    ({"stack": {"ingest": {"metrics_port": 0}}}, "spec.stack.ingest.metrics_port"),
    ({"redis": {"managed": {}, "externalUrl": "redis://x"}}, "exactly one"),
    ({"trainer": {"gpus": -1}}, "spec.trainer.gpus"),
    ({"bogus": 1}, "spec.bogus"),
])
def test_invalid_specs_raise_invalid_spec_naming_the_field(spec, where):
    with pytest.raises(InvalidSpec, match=where.replace(".", r"\.")):
        render("demo", "ns", spec, UID)


def test_overlong_name_is_invalid():
    with pytest.raises(InvalidSpec, match="metadata.name"):
        render("x" * 41, "ns", {}, UID)


def test_stack_ignores_the_operators_own_environment(monkeypatch):
    monkeypatch.setenv("COBSTACK_SOURCE", "live")
    monkeypatch.setenv("COBSTACK_SYMBOLS", '["DOGE-USD"]')
    stack = parse_spec({}).stack
    assert stack.source == "sim" and stack.symbols == ["BTC-USD", "ETH-USD"]


@pytest.mark.parametrize("spec", [
    {},
    {"redis": {"externalSecret": {"name": "bus"}}, "trainer": {"gpus": 2, "runtimeClassName": "nvidia",
                                                              "tolerations": [{"operator": "Exists"}]}},
])
def test_rendered_children_pass_the_kubernetes_schemas(spec):
    import kubernetes_validate

    for obj in render("demo", "markets", spec, UID):
        kubernetes_validate.validate(obj, "1.35.0", strict=True)  # raises on any schema violation
