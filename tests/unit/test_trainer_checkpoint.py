"""Exact resume, atomic checkpoints, model presets and the xl memory plan (meta device)."""

import os
import threading

import numpy as np
import pytest
import torch

from cobstack.config import TrainerSettings
from cobstack.trainer import checkpoint
from cobstack.trainer.dataset import Series
from cobstack.trainer.models import PRESETS, build, memory_plan, param_count
from cobstack.trainer.train import FoldTrainer, Plan, prepare


def synthetic(n: int = 900, k2: int = 8, venues: int = 2, seed: int = 3) -> Series:
    """Random books and features with a mid that follows the first feature (learnable)."""
    rng = np.random.default_rng(seed)
    feats = rng.normal(size=(n, 5)).astype(np.float32)
    mid = 100 * np.exp(np.cumsum(1e-4 * (feats[:, 0] + rng.normal(size=n))))
    book = rng.gamma(2.0, 1.0, size=(n, k2, 2, venues)).astype(np.float32)
    px = mid[:, None] + np.arange(1, 4)[None, :] * 0.01
    sz = np.ones((n, 3, venues))
    return Series("X-USD", [f"v{i}" for i in range(venues)], [f"f{i}" for i in range(5)],
                  [f"{i}-0" for i in range(n)], np.arange(n), book, feats, mid, np.full(n, 0.01),
                  mid[:, None] - (px - mid[:, None]), sz, px, sz.copy())


def plan(**kw) -> Plan:
    return Plan.from_settings(TrainerSettings(**{"window": 8, "batch_size": 16, "steps": 20, "horizons": [2, 4],
                                                 "device": "cpu", **kw}))


def params(t: FoldTrainer) -> list[torch.Tensor]:
    return [p.detach().clone() for p in t.model.parameters()]


def test_resuming_from_a_checkpoint_reproduces_the_next_steps_exactly(tmp_path):
    torch.set_num_threads(1)
    data = prepare(synthetic(), plan())
    a = FoldTrainer(data, 0, plan())
    for _ in range(5):
        a.step()
    path = tmp_path / "ck.pt"
    checkpoint.save_atomic({"trainer": a.state()}, path)
    # the run goes on: two more steps, crossing nothing special
    losses_a = [a.step() for _ in range(2)]
    torch.manual_seed(12345)  # a restarted process has other RNG state until it loads
    np.random.seed(7)
    b = FoldTrainer(data, 0, plan())
    b.load_state(checkpoint.load(path)["trainer"])
    losses_b = [b.step() for _ in range(2)]
    assert losses_a == losses_b
    for pa, pb in zip(params(a), params(b)):
        assert torch.equal(pa, pb)
    assert (a.epoch, a.pos) == (b.epoch, b.pos)


def test_batch_order_survives_an_epoch_boundary_on_resume():
    data = prepare(synthetic(), plan())
    a = FoldTrainer(data, 0, plan(batch_size=64))
    a.next_batch()
    state = a.state()
    ahead = []
    while a.epoch == 0:  # the batch that starts epoch 1 ends the loop
        ahead.append(a.next_batch())
    ahead.append(a.next_batch())
    b = FoldTrainer(data, 0, plan(batch_size=64))
    b.load_state(state)
    assert all(np.array_equal(x, b.next_batch()) for x in ahead)
    assert b.epoch == 1


def test_atomic_save_leaves_no_temp_file_and_a_torn_file_is_reported(tmp_path):
    path = tmp_path / "sub" / "ck.pt"
    checkpoint.save_atomic({"x": 1}, path)
    checkpoint.save_atomic({"x": 2}, path)
    assert checkpoint.load(path) == {"x": 2}
    assert os.listdir(path.parent) == ["ck.pt"]
    assert checkpoint.load(tmp_path / "absent.pt") is None
    path.write_bytes(path.read_bytes()[:20])  # what a non-atomic writer killed mid-write leaves
    with pytest.raises(RuntimeError, match="move it away"):
        checkpoint.load(path)


def test_early_stopping_keeps_the_best_validated_weights():
    t = FoldTrainer(prepare(synthetic(), plan()), 0, plan())
    assert t.keep_if_best(1.0) and not t.keep_if_best(1.5)
    kept = {k: v.clone() for k, v in t.model.state_dict().items()}
    t.step()
    t.use_best()
    assert all(torch.equal(v, t.model.state_dict()[k]) for k, v in kept.items())


def test_models_and_labels_agree_on_the_classes():
    from cobstack.trainer import labels, models
    assert models.CLASSES == labels.CLASSES == len((labels.DOWN, labels.FLAT, labels.UP))


def test_presets_sizes():
    tiny = build("tiny", 40, 6, 14, 3)
    assert 80_000 <= param_count(tiny) <= 130_000
    out = tiny(torch.zeros(2, PRESETS["tiny"].window, 40, 2, 3), torch.zeros(2, PRESETS["tiny"].window, 14))
    assert out.shape == (2, 3, 3)
    assert param_count(build("base", 40, 6, 14, 3)) > 3 * param_count(tiny)


def test_xl_is_planned_on_the_meta_device_without_allocating():
    plan_ = memory_plan("xl", 40, 6, 14, 3)
    assert 0.9e9 <= plan_["params"] <= 1.2e9
    assert plan_["adamw_bytes"] == 8 * plan_["params"]
    assert plan_["activations_checkpointed_bytes"] < plan_["activations_bytes"] / 5
    assert plan_["total_checkpointed_bytes"] < 80 * 2**30  # fits one 80 GB GPU with checkpointing
    model = build("xl", 40, 6, 14, 3, device="meta")
    assert all(p.is_meta for p in model.parameters())


def test_a_stopped_run_saves_and_the_next_run_resumes_where_it_stopped(tmp_path):
    from cobstack.trainer.run import DataKey, Stopped, run_training

    series = synthetic()
    key = DataKey("cob:book:X-USD", series.ids[0], series.ids[-1], len(series))
    settings = TrainerSettings(window=8, batch_size=16, steps=12, horizons=[2, 4], device="cpu", log_every=3,
                               checkpoint_every=100, dqn_steps=0, checkpoint_dir=str(tmp_path))
    stop = threading.Event()
    seen: list[tuple[str, dict]] = []

    def emit(kind: str, record: dict) -> None:
        seen.append((kind, record))
        stop.set()  # asked to stop at the first progress record (step 3)

    path = tmp_path / "ck.pt"
    with pytest.raises(Stopped, match="step 3"):
        run_training(series, key, settings, "v0", path, emit, stop)
    assert checkpoint.load(path)["trainer"]["step"] == 3
    seen.clear()
    final = run_training(series, key, settings, "v0", path, lambda k, r: seen.append((k, r)),
                         threading.Event())
    assert seen[0] == ("resumed", {"fold": 0, "step": 3})
    assert final["done"] and final["report"]["rl"] is None
    assert set(final["report"]["summary"]) == {"2", "4"}
