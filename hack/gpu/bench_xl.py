"""xl preset training-step benchmark on one GPU: step time, tokens/s, MFU, peak memory.

Runs the trainer's own xl model (cobstack.trainer.models: transformer encoder, ~1B params)
with what the trainer uses on a GPU: bf16 autocast over fp32 master weights, activation
checkpointing per block, fused AdamW, optionally torch.compile. Inputs are random tensors
of the real shapes (2K=40 buckets x 2 x 3 venues, 12 features, window 256), so the numbers
are the model's, independent of data loading. Needs only the repository and torch.

MFU = model FLOPs per token (6N + 12*L*d*T, recomputation not counted) * tokens/s / peak
dense bf16 FLOP/s of the card (H100 SXM / H200: 989 TFLOP/s; H100 PCIe: 756).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from cobstack.trainer.models import CLASSES, PRESETS, autocast, build, make_optimizer, param_count, train_flops_per_token

BUCKETS, SIDES, VENUES, FEATS, HORIZONS = 40, 2, 3, 12, 3


def peak_flops(name: str) -> float:
    if "H100" in name and "PCIe" in name:
        return 756e12
    if "H100" in name or "H200" in name:
        return 989e12
    if "A100" in name:
        return 312e12
    raise SystemExit(f"unknown GPU {name!r}: pass --peak-tflops")


def run(batch: int, steps: int, compile_: bool, checkpointing: bool) -> dict:
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    p = PRESETS["xl"]
    model = build("xl", BUCKETS, SIDES * VENUES, FEATS, HORIZONS, device="cuda")
    model.encoder.checkpointing = checkpointing
    model.train()
    fwd = torch.compile(model) if compile_ else model
    opt = make_optimizer(model, p.lr, "cuda")
    book = torch.randn(batch, p.window, BUCKETS, SIDES, VENUES, device="cuda")
    feats = torch.randn(batch, p.window, FEATS, device="cuda")
    y = torch.randint(0, CLASSES, (batch, HORIZONS), device="cuda")

    def step() -> None:
        with autocast("cuda"):
            logits = fwd(book, feats)
        loss = torch.nn.functional.cross_entropy(logits.float().flatten(0, 1), y.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    t0 = time.perf_counter()
    for _ in range(3):  # warm-up (and compilation)
        step()
    torch.cuda.synchronize()
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    torch.cuda.synchronize()
    step_s = (time.perf_counter() - t0) / steps
    n = param_count(model)
    tokens = batch * p.window / step_s
    out = {"batch": batch, "window": p.window, "params": n, "compile": compile_, "checkpointing": checkpointing,
           "step_s": round(step_s, 4), "tokens_per_s": round(tokens), "samples_per_s": round(batch / step_s, 1),
           "model_tflops": round(train_flops_per_token("xl", n) * tokens / 1e12, 1),
           "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2), "warmup_s": round(warmup_s, 1)}
    del model, opt, fwd
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batches", default="32,64", help="batch sizes to try (eager)")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--compile", action="store_true", help="also time the best batch with torch.compile")
    ap.add_argument("--peak-tflops", type=float, help="override the card's dense bf16 peak")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device visible to torch", file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = True
    name = torch.cuda.get_device_name()
    peak = args.peak_tflops * 1e12 if args.peak_tflops else peak_flops(name)
    results = []
    for b in (int(x) for x in args.batches.split(",")):
        try:
            results.append(run(b, args.steps, False, True))
        except torch.OutOfMemoryError as e:
            results.append({"batch": b, "error": f"out of memory: {str(e)[:120]}"})
        print(json.dumps(results[-1]), flush=True)
    ok = [r for r in results if "error" not in r]
    if args.compile and ok:
        best = max(ok, key=lambda r: r["tokens_per_s"])["batch"]
        results.append(run(best, args.steps, True, True))
        print(json.dumps(results[-1]), flush=True)
    for r in results:
        if "error" not in r:
            r["mfu"] = round(r["model_tflops"] * 1e12 / peak, 3)
    print(json.dumps({"device": name, "torch": torch.__version__, "peak_tflops": peak / 1e12,
                      "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
