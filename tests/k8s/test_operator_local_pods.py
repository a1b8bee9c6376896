"""The pods the operator renders really start the components: their exact commands and env run
here as processes against a real redis-server and the simulated venues, and the probes the pods
declare answer. Only what a pod gets from the cluster is swapped for its local equivalent: the
ConfigMap mount becomes a file, the Redis Service a local URL, 0.0.0.0 and fixed ports become
127.0.0.1 and free ports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from cobstack.bus.local_redis import LocalRedis, free_port
from cobstack.streams import TRAIN_REPORT_STREAM, book_stream
from cobstack_operator.render import CONFIG_PATH, render

pytestmark = pytest.mark.redis

REPO = Path(__file__).resolve().parents[2]
SYMBOL = "BTC-USD"
STARTUP_S = 90.0


def rendered(redis_url: str, workdir: Path) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    spec = yaml.safe_load((REPO / "examples" / "cobstack.yaml").read_text())["spec"]
    spec["stack"].update(symbols=[SYMBOL], venues=["binance", "coinbase"])
    # The example's trainer, sized for a test: the least history allowed, a short run.
    spec["stack"]["trainer"].update(min_snapshots=200, window=8, embargo=0, steps=20, dqn_steps=20, horizons=[5, 10])
    objs = render("demo", "local", spec, "uid-local")
    (config_map,) = [o for o in objs if o["kind"] == "ConfigMap"]
    config = yaml.safe_load(config_map["data"]["config.yaml"])
    assert config["ingest"]["metrics_host"] == config["dashboard"]["host"] == "0.0.0.0"
    config["ingest"].update(metrics_host="127.0.0.1", metrics_port=free_port())
    config["dashboard"].update(host="127.0.0.1", port=free_port())
    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    deployments = {o["metadata"]["name"].removeprefix("demo-"): o for o in objs if o["kind"] == "Deployment"}
    deployments["trainer"] = next(o for o in objs if o["kind"] == "Job")  # its pod template, like the others
    for d in deployments.values():
        env = d["spec"]["template"]["spec"]["containers"][0]["env"]
        assert {"name": "COBSTACK_REDIS_URL", "value": "redis://demo-redis:6379/0"} in env
    return deployments, config


def run_container(deployment: dict[str, Any], redis_url: str, workdir: Path) -> subprocess.Popen[bytes]:
    c = deployment["spec"]["template"]["spec"]["containers"][0]
    argv = [a.replace(CONFIG_PATH, str(workdir / "config.yaml")) for a in c["command"] + c["args"]]
    env = {k: v for k, v in os.environ.items() if not k.startswith("COBSTACK_")}
    env.update({e["name"]: e["value"] for e in c["env"]})
    env.update(COBSTACK_REDIS_URL=redis_url, HOME=str(workdir))
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # `cobstack` of this venv
    log = (workdir / f"{c['name']}.log").open("wb")
    return subprocess.Popen(argv, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)


def http_json(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except (OSError, ValueError):
        return 0, None


def probe_url(deployment: dict[str, Any], probe: str, port: int) -> str:
    path = deployment["spec"]["template"]["spec"]["containers"][0][probe]["httpGet"]["path"]
    return f"http://127.0.0.1:{port}{path}"


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    running: dict[str, subprocess.Popen[bytes]] = {}
    yield running
    for p in running.values():
        p.terminate()
    for p in running.values():
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()


def wait(what: str, check, processes: dict[str, subprocess.Popen[bytes]], workdir: Path) -> Any:
    deadline = time.monotonic() + STARTUP_S
    while True:
        for name, p in processes.items():
            if p.poll() is not None:
                pytest.fail(f"{name} exited with {p.returncode}:\n{(workdir / f'{name}.log').read_text()[-3000:]}")
        if result := check():
            return result
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {n}:\n{(workdir / f'{n}.log').read_text()[-1500:]}" for n in processes)
            pytest.fail(f"{what}: not within {STARTUP_S:.0f} s\n{logs}")
        time.sleep(0.5)


def test_rendered_pods_run_the_components_and_snapshots_reach_the_consumers(
        redis_server: LocalRedis, tmp_path: Path, processes: dict[str, subprocess.Popen[bytes]]):
    deployments, config = rendered(redis_server.url, tmp_path)
    assert set(deployments) == {"ingest", "dashboard", "executor", "trainer"}
    for name in ("ingest", "dashboard", "executor"):
        processes[name] = run_container(deployments[name], redis_server.url, tmp_path)

    ingest_port, dash_port = config["ingest"]["metrics_port"], config["dashboard"]["port"]
    # The probes the pods declare, answered by the real processes.
    wait("ingest readinessProbe", lambda: http_json(probe_url(deployments["ingest"], "readinessProbe", ingest_port))[0] == 200,
         processes, tmp_path)
    assert http_json(probe_url(deployments["ingest"], "livenessProbe", ingest_port))[0] == 200
    wait("dashboard readinessProbe", lambda: http_json(probe_url(deployments["dashboard"], "readinessProbe", dash_port))[0] == 200,
         processes, tmp_path)

    client = redis.Redis.from_url(redis_server.url)
    wait(f"snapshots on {book_stream(SYMBOL)}", lambda: client.xlen(book_stream(SYMBOL)) > 0, processes, tmp_path)

    def dashboard_records() -> int:
        _, health = http_json(f"http://127.0.0.1:{dash_port}/healthz")
        return ((health or {}).get("feeds", {}).get(book_stream(SYMBOL)) or {}).get("records", 0)

    wait("dashboard reading the snapshots", dashboard_records, processes, tmp_path)

    def executor_group() -> bool:
        groups = [g for stream in client.scan_iter(match="cob:*", _type="stream")
                  for g in client.xinfo_groups(stream)]
        return any(g["name"] == b"executor" for g in groups)

    wait("executor consumer group on the bus", executor_group, processes, tmp_path)


def test_the_rendered_training_job_trains_on_cpu_and_completes(
        redis_server_factory, tmp_path: Path, processes: dict[str, subprocess.Popen[bytes]]):
    """`gpus: 0`: the Job's container trains the tiny preset on the CPU from the stream,
    writes its evaluation report, and exits 0 (what makes the Job Succeeded). A Redis of its
    own: the history it trains on is exactly this stack's."""
    redis_server = redis_server_factory()
    pods, _ = rendered(redis_server.url, tmp_path)
    job = pods["trainer"]
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert "nvidia.com/gpu" not in container["resources"].get("limits", {})
    processes["ingest"] = run_container(pods["ingest"], redis_server.url, tmp_path)
    trainer = run_container(job, redis_server.url, tmp_path)
    try:
        code = trainer.wait(timeout=240)
    except subprocess.TimeoutExpired:
        trainer.kill()
        pytest.fail(f"the training Job did not finish:\n{(tmp_path / 'trainer.log').read_text()[-3000:]}")
    assert code == 0, (tmp_path / "trainer.log").read_text()[-3000:]
    reports = [p for p in tmp_path.rglob("*.json") if p.with_suffix(".md").exists()]
    assert reports, f"no evaluation report under the Job's working directory {tmp_path}"
    client = redis.Redis.from_url(redis_server.url)
    assert client.xlen(TRAIN_REPORT_STREAM) >= 1
