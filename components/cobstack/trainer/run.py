"""One training run, start to finish, resumable: folds -> evaluation -> DQN -> report.

Synchronous and free of the bus: the service runs it in a worker thread and passes
`emit(kind, record)` to put progress on the metrics stream, and `stop` (a threading.Event)
to end it early; a stopped run saves a checkpoint first, so the next start resumes it.

Checkpoint (one file per symbol and preset, replaced atomically):
    run_id, plan, data {stream, first_id, last_id, count}, fold (in progress), trainer
    state of that fold (model, optimiser, RNG, cursor, step, best weights), finished fold
    results, and once done: the deployed model (the last fold's), normalisers, DQN head,
    report.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import TrainerSettings
from . import checkpoint
from .dataset import Series
from .dqn import DQNConfig, evaluate_dqn, train_dqn
from .env import Market
from .evaluate import baseline_predictions, score_fold
from .metrics import decide
from .models import param_count
from .progress import Progress
from .report import build_report
from .train import Data, FoldTrainer, Plan, prepare

log = logging.getLogger("cobstack.trainer")

Emit = Callable[[str, dict], None]


class Stopped(Exception):
    """Training was asked to stop; a checkpoint was written."""


@dataclass(frozen=True)
class DataKey:
    stream: str
    first_id: str
    last_id: str
    count: int

    def key(self) -> str:
        return f"{self.stream}:{self.first_id}..{self.last_id}#{self.count}"


def model_version(preset: str, run_id: str, step: int) -> str:
    return f"{preset}-{run_id}@{step}"


def gpu_memory() -> int | None:
    return torch.cuda.max_memory_allocated() if torch.cuda.is_available() else None


def run_training(series: Series, data_key: DataKey, settings: TrainerSettings, rl_venue: str,
                 ckpt_path: Path, emit: Emit, stop: threading.Event) -> dict:
    """Train (or resume), evaluate and build the report; returns the final checkpoint dict."""
    plan = Plan.from_settings(settings)
    run_id = plan.run_id(data_key.key())
    state = checkpoint.load(ckpt_path)
    if state is not None and state.get("run_id") != run_id:
        log.warning("checkpoint %s is from another run (%s, not %s: settings or data differ); "
                    "starting afresh", ckpt_path, state.get("run_id"), run_id)
        state = None
    if state is not None and state.get("done"):
        return state
    data = prepare(series, plan)
    state = state or {"run_id": run_id, "plan": asdict(plan), "data": asdict(data_key), "fold": 0,
                      "trainer": None, "fold_results": [], "done": False}
    schedule = (settings.checkpoint_every, settings.log_every)
    while True:  # the last fold's state stays in the checkpoint until the run is done
        trainer = _train_fold(data, plan, state, ckpt_path, schedule, emit, stop)
        state["fold_results"].append(_score(data, plan, trainer))
        emit("fold", state["fold_results"][-1])
        if state["fold"] + 1 == len(data.folds):
            break
        state["fold"] += 1
        state["trainer"] = None
        checkpoint.save_atomic(state, ckpt_path)
    final = _finish(data, plan, settings, trainer, state, rl_venue, run_id, emit)
    checkpoint.save_atomic(final, ckpt_path)
    return final


def _train_fold(data: Data, plan: Plan, state: dict, ckpt_path: Path, schedule: tuple[int, int],
                emit: Emit, stop: threading.Event) -> FoldTrainer:
    """Train fold state["fold"] to plan.steps (resuming from state["trainer"]), validating and
    checkpointing every `schedule[0]` steps, reporting progress every `schedule[1]`."""
    k = state["fold"]
    checkpoint_every, log_every = schedule
    trainer = FoldTrainer(data, k, plan)
    if state["trainer"] is not None:
        trainer.load_state(state["trainer"])
        log.info("resumed fold %d at step %d from %s", k, trainer.step_no, ckpt_path)
        emit("resumed", {"fold": k, "step": trainer.step_no})
    bar = Progress(plan.steps, f"train {plan.preset} fold {k + 1}/{len(data.folds)}", start=trainer.step_no)
    t0, done0 = time.perf_counter(), trainer.step_no
    while trainer.step_no < plan.steps:
        if stop.is_set():
            _save_fold(state, trainer, ckpt_path)
            raise Stopped(f"stopped at fold {k} step {trainer.step_no}; checkpoint {ckpt_path}")
        loss = trainer.step()
        step = trainer.step_no
        rate = (step - done0) * plan.batch_size / max(time.perf_counter() - t0, 1e-9)
        bar.update(1, loss=loss)
        if step % log_every == 0 or step == plan.steps:
            emit("progress", {"fold": k, "step": step, "steps": plan.steps, "loss": loss,
                              "samples_per_s": rate, "gpu_memory_bytes": gpu_memory()})
        if step % checkpoint_every == 0 or step == plan.steps:
            val = trainer.validate()
            trainer.keep_if_best(val)
            _save_fold(state, trainer, ckpt_path)
            emit("validation", {"fold": k, "step": step, "val_loss": val, "best_step": trainer.best["step"]})
    trainer.use_best()
    return trainer


def _save_fold(state: dict, trainer: FoldTrainer, ckpt_path: Path) -> None:
    state["trainer"] = trainer.state()
    checkpoint.save_atomic(state, ckpt_path)


def _score(data: Data, plan: Plan, trainer: FoldTrainer) -> dict:
    fold = trainer.fold
    test = np.arange(fold.test.start, fold.test.stop)
    horizons = list(plan.horizons)
    baselines = baseline_predictions(data.series, data.labels, fold, horizons)
    return {"fold": trainer.fold_index, "split": fold.as_dict(), "steps": trainer.step_no,
            "best_step": trainer.best["step"], "best_val_loss": trainer.best["loss"],
            "decision_bias": trainer.bias.tolist(),
            "scores": score_fold(data.labels, fold, horizons, decide(trainer.predict(test), trainer.bias),
                                 baselines)}


def _finish(data: Data, plan: Plan, settings: TrainerSettings, trainer: FoldTrainer, state: dict,
            rl_venue: str, run_id: str, emit: Emit) -> dict:
    """DQN on the last fold's frozen encoder, the report, and the deployable state."""
    s = data.series
    fold = trainer.fold
    rl = None
    q_state = None
    if settings.dqn_steps:
        positions = np.arange(plan.window - 1, len(s))
        view = trainer.embed(positions)
        emb = np.zeros((len(s), view.shape[1]), dtype=np.float32)
        emb[positions] = view
        unit = settings.rl_unit_usd / float(s.mid[fold.train.start])
        market = Market.from_series(s, rl_venue, unit, plan.taker_fee)
        q = train_dqn(emb, market, range(fold.train.start, fold.val.stop),
                      DQNConfig(steps=settings.dqn_steps, seed=plan.seed))
        rl = evaluate_dqn(q, emb, market, fold.test)
        q_state = q.state_dict()
        emit("rl", rl)
    version = model_version(plan.preset, run_id, trainer.best["step"])
    report = build_report(s, plan, state["data"], state["fold_results"], rl, version,
                          param_count(trainer.model))
    return {"run_id": run_id, "plan": state["plan"], "data": state["data"], "done": True,
            "model_version": version, "model": trainer.model.state_dict(), "q_head": q_state,
            "book_norm": trainer.book_norm.state(), "feat_norm": trainer.feat_norm.state(),
            "decision_bias": trainer.bias.tolist(),
            "shapes": {"book": list(s.book.shape[1:]), "feats": s.feats.shape[1]},
            "feature_names": s.feature_names, "venues": s.venues, "symbol": s.symbol,
            "report": report}
