"""Live inference: the deployed model applied to each new snapshot of the stream.

Keeps the last `window` snapshots' inputs (normalised with the TRAINING statistics stored
in the checkpoint) and turns each new one into a Signal. A Gap in the stream (entries
lost to retention) or a one-sided book breaks the window: no signal until it is full
again, because a window with a hole is not what the model was trained on.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch

from ..core.schema import Snapshot
from .dataset import scalar_features
from .metrics import decide
from .models import build
from .signals import Signal, make_signal
from .splits import Normaliser


class LiveModel:
    def __init__(self, state: dict, signal_horizon: int | None = None, device: str = "cpu"):
        plan = state["plan"]
        self.symbol, self.venues = state["symbol"], state["venues"]
        self.version = state["model_version"]
        self.window = plan["window"]
        self.horizons = list(plan["horizons"])
        self.horizon = signal_horizon or self.horizons[0]
        if self.horizon not in self.horizons:
            raise ValueError(f"signal horizon {self.horizon} is not one the model predicts "
                             f"({self.horizons}); set trainer.signal_horizon to one of them")
        self.h_index = self.horizons.index(self.horizon)
        self.book_shape = tuple(state["shapes"]["book"])
        k2, sides, v = self.book_shape
        self.device = device
        self.model = build(plan["preset"], k2, sides * v, state["shapes"]["feats"], len(self.horizons),
                           device=device, window=self.window)
        self.model.load_state_dict(state["model"])
        self.model.eval()
        self.book_norm = Normaliser.from_state(state["book_norm"])
        self.feat_norm = Normaliser.from_state(state["feat_norm"])
        self.bias = np.array(state["decision_bias"][self.h_index:self.h_index + 1])
        self.levels = sorted(int(n.split("_")[1]) for n in state["feature_names"] if n.startswith("imbalance_"))
        self.books: deque[np.ndarray] = deque(maxlen=self.window)
        self.feats: deque[np.ndarray] = deque(maxlen=self.window)
        self.prev_mid: float | None = None

    def reset(self) -> None:
        """Forget the window (after a Gap)."""
        self.books.clear()
        self.feats.clear()
        self.prev_mid = None

    def check(self, snap: Snapshot) -> None:
        if snap.symbol != self.symbol or snap.venues != self.venues or snap.tensor.shape != self.book_shape:
            raise ValueError(f"snapshot of {snap.symbol} venues {snap.venues} tensor {snap.tensor.shape} does "
                             f"not match the model ({self.symbol}, {self.venues}, {self.book_shape}); "
                             f"retrain for this configuration")

    def prime(self, snap: Snapshot) -> None:
        """Take a snapshot into the window without predicting (catching up with the stream)."""
        self._push(snap)

    def _push(self, snap: Snapshot) -> bool:
        """Add the snapshot's inputs to the window; False (window reset) without a mid."""
        self.check(snap)
        if snap.features.mid is None:
            self.reset()
            return False
        self.books.append(self.book_norm(snap.tensor.reshape(1, -1))[0])
        self.feats.append(self.feat_norm(np.asarray([scalar_features(snap, self.prev_mid, self.levels)],
                                                    dtype=np.float32))[0])
        self.prev_mid = snap.features.mid
        return True

    @torch.no_grad()
    def on_snapshot(self, entry_id: str, snap: Snapshot, now_ns: int) -> Signal | None:
        if not self._push(snap) or len(self.books) < self.window:
            return None
        book = torch.from_numpy(np.stack(self.books)).view(1, self.window, *self.book_shape).to(self.device)
        feats = torch.from_numpy(np.stack(self.feats))[None].to(self.device)
        probs = torch.softmax(self.model(book, feats)[0, self.h_index].float(), dim=-1).numpy()
        direction = int(decide(probs[None, None], self.bias)[0, 0]) - 1
        return make_signal(self.symbol, now_ns, entry_id, snap.ts, self.version, self.horizon,
                           probs.tolist(), direction)
