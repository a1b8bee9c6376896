"""The evaluation report: JSON (machine-readable, also published to cob:train:report) and
Markdown (for people), both written atomically next to the checkpoint."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .dataset import Series

BASELINES = ("majority", "persistence", "logistic")
ANCHORS = (
    "Published anchors, for context only: DeepLOB reached 83.4% F1 at k=10 on FI-2010 "
    "(Zhang et al. 2019), but in the LOBCAST benchmark (Prata et al. 2024) every model fell "
    "to 48-61% F1 on newer data. Only the out-of-sample comparison against the baselines "
    "below, on the same samples, says whether this model learned anything.")


def build_report(series: Series, plan, data: dict, folds: list[dict], rl: dict | None,
                 model_version: str, params: int) -> dict:
    horizons = [str(h) for h in plan.horizons]
    summary = {}
    for h in horizons:
        row = {}
        for name in ("model", *BASELINES):
            row[name] = {m: float(np.mean([f["scores"][name][h][m] for f in folds])) for m in ("f1", "mcc")}
        best_baseline = max(BASELINES, key=lambda b: row[b]["mcc"])
        row["best_baseline"] = best_baseline
        row["model_beats_baselines"] = row["model"]["mcc"] > row[best_baseline]["mcc"]
        summary[h] = row
    return {
        "generated_ns": time.time_ns(), "model_version": model_version, "symbol": series.symbol,
        "venues": series.venues, "preset": plan.preset, "params": params, "plan": asdict(plan),
        "data": {**data, "snapshots_used": len(series), "skipped": series.skipped},
        "features": series.feature_names, "summary": summary, "folds": folds, "rl": rl,
        "anchors": ANCHORS,
    }


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def render_markdown(r: dict) -> str:
    lines = [f"# Trainer report: {r['symbol']} ({r['model_version']})", "",
             f"Preset `{r['preset']}` ({r['params']:,} parameters), trained on {r['data']['snapshots_used']:,} "
             f"snapshots of `{r['data']['stream']}` ({r['data']['first_id']} .. {r['data']['last_id']}), "
             f"venues {', '.join(r['venues'])}; labels `{r['plan']['label']}` with a no-trade band of "
             f"half-spread + {r['plan']['taker_fee'] * 1e4:g} bps taker fee; {len(r['folds'])} walk-forward "
             f"fold(s), purge {max(r['plan']['horizons'])} + embargo {r['plan']['embargo']} samples.", "",
             "## Out-of-sample scores (mean over folds)", "",
             "| horizon | model F1 | model MCC | " + " | ".join(f"{b} F1 | {b} MCC" for b in BASELINES)
             + " | beats every baseline (MCC) |",
             "|---" * (4 + 2 * len(BASELINES)) + "|"]
    for h, row in r["summary"].items():
        cells = [h, _pct(row["model"]["f1"]), f"{row['model']['mcc']:.3f}"]
        for b in BASELINES:
            cells += [_pct(row[b]["f1"]), f"{row[b]['mcc']:.3f}"]
        cells.append("yes" if row["model_beats_baselines"] else f"no (best: {row['best_baseline']})")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Label mix of the test blocks [down, flat, up]: " + "; ".join(
        f"h={h}: {', '.join(_pct(x) for x in mix)}" for h, mix in r["folds"][-1]["scores"]["label_mix"].items()), ""]
    if r["rl"]:
        rl = r["rl"]
        lines += ["## Reinforcement learning (double DQN, last fold's test block)", "",
                  f"Fills walk {rl['venue']}'s own levels for {rl['unit']:.6g} units with a "
                  f"{rl['taker_fee_bps']:g} bps taker fee; PnL is net of fees, in bps of one unit's notional "
                  f"and in the quote currency.", "",
                  "| policy | net PnL (bps) | net PnL (quote) | trades |", "|---|---|---|---|"]
        for name in ("dqn", "always_flat", "buy_and_hold"):
            p = rl[name]
            lines.append(f"| {name} | {p['pnl_bps']:.1f} | {p['pnl_quote']:.2f} | {p['trades']} |")
        lines.append("")
    lines += ["## Context", "", r["anchors"], ""]
    return "\n".join(lines)


def write_report(r: dict, directory: str | Path, stem: str) -> tuple[Path, Path]:
    """`<stem>.json` and `<stem>.md` in `directory`, each replaced atomically."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    for suffix, text in ((".json", json.dumps(r, indent=2, sort_keys=True)), (".md", render_markdown(r))):
        path = directory / f"{stem}{suffix}"
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        out.append(path)
    return out[0], out[1]
