"""Double DQN on the encoder's embedding: buy / hold / sell in the replayed market (env.py).

The supervised encoder is frozen; its embedding of each snapshot's window is computed once,
so an environment step is an index increment and the agent trains in seconds on a CPU.
The Q head (models.QHead) sees the embedding and the held position. Double DQN (van
Hasselt et al. 2016): the online network picks the next action, the target network
(a periodically synced copy) values it. Transitions go to a uniform replay buffer.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .env import HOLD, Market, baselines, rollout
from .models import QHead


@dataclass(frozen=True)
class DQNConfig:
    steps: int = 1500  # gradient steps
    batch_size: int = 128
    lr: float = 1e-3
    gamma: float = 0.95
    buffer: int = 50_000
    warmup: int = 2_000  # environment steps before learning starts
    env_steps_per_update: int = 4
    target_sync: int = 200  # gradient steps between target-network syncs
    eps_start: float = 1.0
    eps_end: float = 0.05
    seed: int = 0


class ReplayBuffer:
    """Ring buffer of (t, position, action, reward, next position, done)."""

    def __init__(self, size: int):
        self.t = np.zeros(size, np.int64)
        self.p = np.zeros(size, np.int64)
        self.a = np.zeros(size, np.int64)
        self.r = np.zeros(size, np.float32)
        self.p2 = np.zeros(size, np.int64)
        self.done = np.zeros(size, np.float32)
        self.size, self.n, self.i = size, 0, 0

    def add(self, t: int, p: int, a: int, r: float, p2: int, done: bool) -> None:
        i = self.i
        self.t[i], self.p[i], self.a[i], self.r[i], self.p2[i], self.done[i] = t, p, a, r, p2, done
        self.i, self.n = (i + 1) % self.size, min(self.n + 1, self.size)

    def sample(self, rng: np.random.Generator, batch: int) -> np.ndarray:
        return rng.integers(0, self.n, batch)


def q_table(q: QHead, emb: torch.Tensor) -> np.ndarray:
    """Q-values for every snapshot and held position: [N, 3 positions, 3 actions]."""
    with torch.no_grad():
        cols = [q(emb, torch.full((len(emb),), p, dtype=torch.int64)) for p in (-1, 0, 1)]
    return torch.stack(cols, dim=1).numpy()


def train_dqn(emb: np.ndarray, market: Market, train: range, cfg: DQNConfig) -> QHead:
    """Learn a Q head on snapshots `train` (episodes run start to end of the range)."""
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    e = torch.from_numpy(emb.astype(np.float32))
    online = QHead(emb.shape[1])
    target = copy.deepcopy(online)
    opt = torch.optim.Adam(online.parameters(), lr=cfg.lr)
    buf = ReplayBuffer(cfg.buffer)
    t, pos = train.start, 0
    total_env = cfg.warmup + cfg.steps * cfg.env_steps_per_update
    env_steps = 0

    def act(t: int, pos: int) -> int:
        eps = max(cfg.eps_end, cfg.eps_start - (cfg.eps_start - cfg.eps_end) * env_steps / total_env)
        if rng.random() < eps:
            return int(rng.integers(0, 3))
        with torch.no_grad():
            return int(online(e[t:t + 1], torch.tensor([pos])).argmax())

    def env_step() -> None:
        nonlocal t, pos, env_steps
        a = act(t, pos)
        new, reward, _ = market.step(t, pos, a)
        done = t + 1 >= train.stop - 1
        buf.add(t, pos, a, reward, new, done)
        t, pos = (train.start, 0) if done else (t + 1, new)
        env_steps += 1

    for _ in range(cfg.warmup):
        env_step()
    for k in range(cfg.steps):
        for _ in range(cfg.env_steps_per_update):
            env_step()
        i = buf.sample(rng, cfg.batch_size)
        t0, t1 = torch.from_numpy(buf.t[i]), torch.from_numpy(buf.t[i] + 1)
        p0, p1 = torch.from_numpy(buf.p[i]), torch.from_numpy(buf.p2[i])
        a = torch.from_numpy(buf.a[i])
        with torch.no_grad():
            best = online(e[t1], p1).argmax(dim=1, keepdim=True)  # online picks...
            nxt = target(e[t1], p1).gather(1, best).squeeze(1)  # ...target values it
            y = torch.from_numpy(buf.r[i]) + cfg.gamma * (1 - torch.from_numpy(buf.done[i])) * nxt
        q = online(e[t0], p0).gather(1, a[:, None]).squeeze(1)
        loss = F.smooth_l1_loss(q, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(online.parameters(), 10.0)
        opt.step()
        if (k + 1) % cfg.target_sync == 0:
            target.load_state_dict(online.state_dict())
    return online


def evaluate_dqn(q: QHead, emb: np.ndarray, market: Market, test: range) -> dict:
    """Greedy policy's net PnL after fees on `test` against always-flat and buy-and-hold."""
    table = q_table(q, torch.from_numpy(emb.astype(np.float32)))
    policy = lambda t, p: int(table[t, p + 1].argmax())  # noqa: E731
    stop = min(test.stop, len(market.mid) - 1)
    return {"dqn": rollout(market, test.start, stop, policy), **baselines(market, test.start, stop),
            "venue": market.venue, "unit": market.unit, "taker_fee_bps": market.fee * 1e4,
            "hold_share": float((table[test.start:stop, 1].argmax(axis=1) == HOLD).mean())}
