"""`cobstack bench trainer`: CPU training throughput of the tiny and base presets, CPU
inference latency per snapshot, and the xl preset's meta-device memory plan.

Training steps run the real FoldTrainer (window gather, forward, backward, clip, AdamW) on
a synthetic series with the production shapes (K=20 buckets a side, 3 venues, 15 features);
throughput does not depend on what the numbers are. The GPU figures for xl come from
hack/gpu/bench_xl.sh.
"""

from __future__ import annotations

import os
import time

import numpy as np
import torch

from ..config import TrainerSettings
from ..trainer.dataset import Series
from ..trainer.models import PRESETS, memory_plan, param_count
from ..trainer.train import FoldTrainer, Plan, prepare

K2, VENUES, FEATS = 40, 3, 15


def synthetic(n: int) -> Series:
    rng = np.random.default_rng(0)
    mid = 60_000 * np.exp(np.cumsum(rng.normal(0, 1e-4, n)))
    px = mid[:, None] + np.arange(1, 11)[None, :]
    sz = np.ones((n, 10, VENUES))
    return Series("BTC-USD", [f"v{i}" for i in range(VENUES)], [f"f{i}" for i in range(FEATS)],
                  [f"{i}-0" for i in range(n)], np.arange(n), rng.gamma(2, 1, (n, K2, 2, VENUES)).astype(np.float32),
                  rng.normal(size=(n, FEATS)).astype(np.float32), mid, np.full(n, 0.01), 2 * mid[:, None] - px, sz,
                  px, sz.copy())


def train_rate(preset: str, threads: int, steps: int, series: Series) -> dict:
    torch.set_num_threads(threads)
    plan = Plan.from_settings(TrainerSettings(preset=preset, device="cpu", steps=steps, horizons=[10, 50, 100]))
    trainer = FoldTrainer(prepare(series, plan), 0, plan)
    trainer.step()  # warm-up
    t0 = time.perf_counter()
    for _ in range(steps):
        trainer.step()
    elapsed = time.perf_counter() - t0
    return {"preset": preset, "threads": threads, "params": param_count(trainer.model), "window": plan.window,
            "batch_size": plan.batch_size, "steps": steps, "step_ms": round(1e3 * elapsed / steps, 1),
            "samples_per_s": round(steps * plan.batch_size / elapsed, 1)}


def infer_latency(series: Series, n: int) -> dict:
    """One new snapshot -> class probabilities, tiny preset, one thread (the live path)."""
    torch.set_num_threads(1)
    plan = Plan.from_settings(TrainerSettings(device="cpu", steps=1, horizons=[10, 50, 100]))
    trainer = FoldTrainer(prepare(series, plan), 0, plan)
    trainer.model.eval()
    times = []
    with torch.no_grad():
        for t in range(plan.window, plan.window + n):
            book, feats = trainer.inputs(np.array([t]))
            t0 = time.perf_counter()
            torch.softmax(trainer.model(book, feats), dim=-1)
            times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1e3
    return {"preset": "tiny", "snapshots": n, "p50_ms": round(float(np.percentile(ms, 50)), 2),
            "p99_ms": round(float(np.percentile(ms, 99)), 2)}


def run(quick: bool) -> dict:
    series = synthetic(3000 if quick else 6000)
    steps = {"tiny": 5 if quick else 40, "base": 3 if quick else 15}
    cores = os.cpu_count() or 1
    training = [train_rate(p, th, steps[p], series) for p in ("tiny", "base")
                for th in sorted({1, cores})]
    plan = memory_plan("xl", K2, 2 * VENUES, FEATS, 3)
    gib = {k: round(v / 2**30, 2) for k, v in plan.items() if k.endswith("_bytes")}
    return {"training_cpu": training, "inference_cpu": infer_latency(series, 50 if quick else 500),
            "xl_plan": {"params": plan["params"], "batch_size": plan["batch_size"], "window": plan["window"],
                        "gib": gib, "config": {k: plan["preset_config"][k] for k in ("d_model", "layers", "heads")}},
            "presets": {p: PRESETS[p].kind for p in PRESETS}}
