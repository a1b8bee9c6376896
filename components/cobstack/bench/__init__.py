"""`cobstack bench`: the benchmarks behind docs/benchmarks.md.

Each benchmark is a function `run(quick: bool) -> dict` in a module of this package,
registered below by name; `cobstack bench NAME...` runs the named ones (all by default) and
prints their results as JSON. Benchmarks measure; the test suite never asserts timings.
"""

from __future__ import annotations

import importlib
import platform
import os

# name -> "module:function" (imported only when run, so one bench's deps never burden another)
BENCHMARKS = {
    "replay": "cobstack.bench.replay:run",
    "pipeline": "cobstack.bench.replay:run_pipeline",
    "latency": "cobstack.bench.latency:run",
    "dashboard": "cobstack.bench.dashboard:run",
    "executor": "cobstack.bench.executor:run",
    "trainer": "cobstack.bench.trainer:run",
}


def machine() -> dict:
    return {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "python": platform.python_version()}


def run_bench(names: list[str], quick: bool = False) -> dict:
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        raise ValueError(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}")
    results = {"machine": machine()}
    for name in names or list(BENCHMARKS):
        module, func = BENCHMARKS[name].split(":")
        results[name] = getattr(importlib.import_module(module), func)(quick)
    return results
