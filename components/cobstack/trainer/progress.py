"""A small progress bar on stderr: redrawn in place on a terminal, one line per tenth of
the work otherwise (pod logs), so it never floods a log file."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, desc: str, start: int = 0, stream: TextIO | None = None):
        self.total, self.desc, self.n = max(1, total), desc, start
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.t0, self.n0 = time.monotonic(), start
        self._next_tenth = (start * 10 // self.total + 1)

    def update(self, n: int = 1, **info: float | str) -> None:
        self.n += n
        rate = (self.n - self.n0) / max(time.monotonic() - self.t0, 1e-9)
        extra = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in info.items())
        if self.tty:
            filled = int(30 * self.n / self.total)
            self.stream.write(f"\r{self.desc} [{'#' * filled}{'.' * (30 - filled)}] "
                              f"{self.n}/{self.total} {rate:.1f}/s {extra}\x1b[K")
            if self.n >= self.total:
                self.stream.write("\n")
        elif self.n * 10 >= self._next_tenth * self.total:
            self._next_tenth = self.n * 10 // self.total + 1
            self.stream.write(f"{self.desc}: {self.n}/{self.total} ({100 * self.n // self.total}%) "
                              f"{rate:.1f}/s {extra}\n")
        self.stream.flush()
