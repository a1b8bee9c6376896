#!/usr/bin/env bash
# xl preset GPU benchmark (docs/benchmarks.md, "Trainer"): step time, tokens/s, MFU, peak memory
# with bf16 autocast, activation checkpointing, fused AdamW, then torch.compile on the best batch.
# Needs only this repository and a CUDA build of torch. Usage, from the repository root:
#   hack/gpu/bench_xl.sh                 # eager B=32,64 + compiled best (about 3-5 minutes)
#   NO_COMPILE=1 hack/gpu/bench_xl.sh    # eager only
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-$(command -v python3 || command -v python)}
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
"$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' \
  || { echo "bench_xl: $PY has no CUDA-enabled torch (install torch with CUDA)" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
export PYTHONPATH="$PWD/components${PYTHONPATH:+:$PYTHONPATH}"
ARGS=(--batches "${BATCHES:-32,64}" --steps "${STEPS:-10}")
if [ -z "${NO_COMPILE:-}" ]; then ARGS+=(--compile); fi
exec timeout "${LIMIT_S:-450}" "$PY" hack/gpu/bench_xl.py "${ARGS[@]}"
