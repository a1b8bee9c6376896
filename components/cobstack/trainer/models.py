"""Models: a DeepLOB-style encoder (tiny, base) or a transformer encoder (xl), with a
supervised direction head and a DQN head sharing the encoder's embedding.

Input per sample, over a window of T snapshots (already normalised):
- book: float32 [B, T, 2K, 2, V], the snapshot's model tensor (rows = price buckets from
  the lowest bid bucket to the highest ask bucket, channel = size / venue share, V venues
  in configured order; docs/streams.md),
- feats: float32 [B, T, F], per-snapshot scalars derived from the published features.

DeepLOB (Zhang, Zohren & Roberts 2019): convolutions first combine each bucket's venue
channels, then pairs of buckets, then the whole ladder, with causal time convolutions in
between; an inception module mixes time scales; an LSTM summarises the window. `base` adds
attention pooling over the LSTM outputs. The transformer treats each snapshot as a token.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Literal

import contextlib

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

CLASSES = 3  # down, flat, up: labels.CLASSES (kept torch-free there, numpy-free here)
ACTIONS = 3  # DQN: 0 sell, 1 hold, 2 buy


@dataclass(frozen=True, slots=True)
class Preset:
    kind: Literal["deeplob", "transformer"]
    window: int  # snapshots per sample
    batch_size: int
    lr: float
    conv: int = 16  # deeplob: channels of the spatial convolutions
    inception: int = 32  # deeplob: channels per inception branch
    hidden: int = 96  # deeplob: LSTM hidden size
    lstm_layers: int = 1
    attention: bool = False  # deeplob: attention pooling over the LSTM outputs
    d_model: int = 0  # transformer
    layers: int = 0
    heads: int = 0
    ff_mult: int = 4
    feat_proj: int = 16  # width the scalar features are projected to (deeplob)
    dropout: float = 0.2  # on the embedding, before the heads


PRESETS: dict[str, Preset] = {
    "tiny": Preset("deeplob", window=50, batch_size=64, lr=1e-3),
    "base": Preset("deeplob", window=100, batch_size=128, lr=5e-4, conv=32, inception=64, hidden=128,
                   lstm_layers=2, attention=True, feat_proj=32),
    "xl": Preset("transformer", window=256, batch_size=32, lr=2e-4, d_model=2048, layers=20, heads=16),
}


def causal_time_conv(cin: int, cout: int, k: int) -> nn.Sequential:
    """A (k x 1) convolution over time that only sees the current and past snapshots."""
    return nn.Sequential(nn.ZeroPad2d((0, 0, k - 1, 0)), nn.Conv2d(cin, cout, (k, 1)), nn.LeakyReLU(0.01))


class DeepLOBEncoder(nn.Module):
    def __init__(self, p: Preset, buckets: int, channels: int, n_feats: int):
        super().__init__()
        c, w = p.conv, buckets
        layers: list[nn.Module] = []
        cin = channels
        for _ in range(2):  # pairs of buckets, twice: 2K -> K -> K/2
            layers += [nn.Conv2d(cin, c, (1, 2), stride=(1, 2)), nn.LeakyReLU(0.01),
                       causal_time_conv(c, c, 4), causal_time_conv(c, c, 4)]
            cin, w = c, w // 2
        layers += [nn.Conv2d(c, c, (1, w)), nn.LeakyReLU(0.01),  # the whole ladder
                   causal_time_conv(c, c, 4), causal_time_conv(c, c, 4)]
        self.spatial = nn.Sequential(*layers)
        i = p.inception
        self.branches = nn.ModuleList([
            nn.Sequential(nn.Conv1d(c, i, 1), nn.LeakyReLU(0.01), nn.ConstantPad1d((2, 0), 0.0),
                          nn.Conv1d(i, i, 3), nn.LeakyReLU(0.01)),
            nn.Sequential(nn.Conv1d(c, i, 1), nn.LeakyReLU(0.01), nn.ConstantPad1d((4, 0), 0.0),
                          nn.Conv1d(i, i, 5), nn.LeakyReLU(0.01)),
            nn.Sequential(nn.ConstantPad1d((2, 0), float("-inf")), nn.MaxPool1d(3, stride=1),
                          nn.Conv1d(c, i, 1), nn.LeakyReLU(0.01)),
        ])
        self.feat = nn.Linear(n_feats, p.feat_proj)
        self.lstm = nn.LSTM(3 * i + p.feat_proj, p.hidden, num_layers=p.lstm_layers, batch_first=True)
        self.attn = nn.Linear(p.hidden, 1) if p.attention else None
        self.dim = p.hidden * (2 if p.attention else 1)

    def forward(self, book: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        b, t, w, s, v = book.shape
        x = book.reshape(b, t, w, s * v).permute(0, 3, 1, 2)  # [B, S*V, T, 2K]
        x = self.spatial(x).squeeze(-1)  # [B, C, T]
        x = torch.cat([br(x) for br in self.branches], dim=1).transpose(1, 2)  # [B, T, 3I]
        x = torch.cat([x, F.leaky_relu(self.feat(feats), 0.01)], dim=-1)
        out, _ = self.lstm(x)
        last = out[:, -1]
        if self.attn is None:
            return last
        weights = torch.softmax(self.attn(torch.tanh(out)), dim=1)  # [B, T, 1]
        return torch.cat([last, (weights * out).sum(dim=1)], dim=-1)


class Block(nn.Module):
    """Pre-norm transformer block; attention through scaled_dot_product_attention, which
    picks the flash / memory-efficient kernel on a GPU."""

    def __init__(self, d: int, heads: int, ff_mult: int):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d, bias=False)
        self.up = nn.Linear(d, ff_mult * d, bias=False)
        self.down = nn.Linear(ff_mult * d, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.down(F.gelu(self.up(self.ln2(x))))


class TransformerEncoder(nn.Module):
    def __init__(self, p: Preset, buckets: int, channels: int, n_feats: int):
        super().__init__()
        self.embed = nn.Linear(buckets * channels + n_feats, p.d_model)
        self.pos = nn.Parameter(torch.zeros(p.window, p.d_model))
        self.blocks = nn.ModuleList(Block(p.d_model, p.heads, p.ff_mult) for _ in range(p.layers))
        self.ln = nn.LayerNorm(p.d_model)
        self.dim = p.d_model
        self.checkpointing = False  # recompute each block's activations in backward (GPU, xl)

    def forward(self, book: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        b, t = book.shape[:2]
        x = self.embed(torch.cat([book.reshape(b, t, -1), feats], dim=-1)) + self.pos[-t:]
        for blk in self.blocks:
            if self.checkpointing and self.training:
                x = checkpoint(blk, x, use_reentrant=False)
            else:
                x = blk(x)
        return self.ln(x[:, -1])  # causal: the last token has seen the whole window


class LOBModel(nn.Module):
    """Encoder + supervised head (logits [B, horizons, 3]); the DQN head (models.QHead)
    is trained separately on the frozen embedding.

    The window's published features also reach the logits through a linear path ("wide and
    deep"): the latest features and each feature summed over the last 2, 4, 8, ... snapshots
    (cumulative return, integrated order flow). It nests the logistic baseline (the latest
    features) and, roughly, persistence (the recent return), with few enough inputs not to
    overfit; the deep path learns what the book and the nonlinearities add."""

    def __init__(self, preset: Preset, buckets: int, channels: int, n_feats: int, horizons: int):
        super().__init__()
        enc = DeepLOBEncoder if preset.kind == "deeplob" else TransformerEncoder
        self.encoder = enc(preset, buckets, channels, n_feats)
        self.horizons = horizons
        self.drop = nn.Dropout(preset.dropout)
        self.head = nn.Linear(self.encoder.dim, horizons * CLASSES)
        self.lookbacks = [2**i for i in range(1, preset.window.bit_length()) if 2**i <= preset.window]
        self.wide = nn.Linear((1 + len(self.lookbacks)) * n_feats, horizons * CLASSES)

    def embed(self, book: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        return self.encoder(book, feats)

    def wide_inputs(self, feats: torch.Tensor) -> torch.Tensor:
        since = feats.flip(1).cumsum(1)  # since[:, k] = sum of the latest k + 1 steps
        return torch.cat([feats[:, -1], *(since[:, k - 1] for k in self.lookbacks)], dim=-1)

    def forward(self, book: torch.Tensor, feats: torch.Tensor) -> torch.Tensor:
        logits = self.head(self.drop(self.embed(book, feats))) + self.wide(self.wide_inputs(feats))
        return logits.view(-1, self.horizons, CLASSES)


class QHead(nn.Module):
    """Q-values of sell / hold / buy from the encoder's embedding and the current position
    (-1, 0, +1, one-hot), so the value of an action can depend on what is already held."""

    def __init__(self, dim: int, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim + 3, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, ACTIONS))

    def forward(self, emb: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([emb, F.one_hot(position + 1, 3).to(emb.dtype)], dim=-1))


def build(preset_name: str, buckets: int, channels: int, n_feats: int, horizons: int,
          device: str | torch.device = "cpu", window: int | None = None) -> LOBModel:
    """The preset's model on `device` ("meta" builds the shapes without allocating);
    `window` overrides the preset's input length."""
    if preset_name not in PRESETS:
        raise ValueError(f"unknown preset {preset_name!r}; known: {', '.join(PRESETS)}")
    preset = PRESETS[preset_name]
    with torch.device(device):
        return LOBModel(replace(preset, window=window or preset.window), buckets, channels, n_feats, horizons)


def autocast(device: str):
    """bf16 autocast on a GPU (fp32 master weights stay in the optimiser); a no-op on CPU."""
    if device == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_optimizer(model: nn.Module, lr: float, device: str) -> torch.optim.Optimizer:
    """AdamW, fused into one kernel per step on a GPU."""
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4, fused=device == "cuda")


def param_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def memory_plan(preset_name: str, buckets: int, channels: int, n_feats: int, horizons: int,
                batch_size: int | None = None) -> dict:
    """Parameter count and training memory (bytes) of a preset, from a meta-device build.

    Mixed precision with fp32 master weights: params 4 B, grads 4 B, AdamW moments 8 B per
    parameter. Transformer activations per layer (Korthikanti et al. 2022, 16-bit, with a
    fused attention kernel that never materialises the T x T scores): about 34*B*T*d bytes;
    with activation checkpointing only each block's input (2*B*T*d bytes) is kept, plus one
    block's activations recomputed at a time.
    """
    p = PRESETS[preset_name]
    model = build(preset_name, buckets, channels, n_feats, horizons, device="meta")
    n = param_count(model)
    b = batch_size or p.batch_size
    plan = {"preset": preset_name, "params": n, "batch_size": b, "window": p.window,
            "params_bytes": 4 * n, "grads_bytes": 4 * n, "adamw_bytes": 8 * n}
    if p.kind == "transformer":
        per_layer = 34 * b * p.window * p.d_model
        plan["activations_bytes"] = p.layers * per_layer
        plan["activations_checkpointed_bytes"] = p.layers * 2 * b * p.window * p.d_model + per_layer
    static = plan["params_bytes"] + plan["grads_bytes"] + plan["adamw_bytes"]
    plan["total_bytes"] = static + plan.get("activations_bytes", 0)
    if "activations_checkpointed_bytes" in plan:
        plan["total_checkpointed_bytes"] = static + plan["activations_checkpointed_bytes"]
    plan["preset_config"] = asdict(p)
    return plan


def train_flops_per_token(preset_name: str, params: int) -> float:
    """Model FLOPs per token for one training step (PaLM appendix B): 6N for the matmuls of
    forward and backward plus 12*L*d*T for attention; recomputation is not counted (MFU, not HFU)."""
    p = PRESETS[preset_name]
    return 6 * params + 12 * p.layers * p.d_model * p.window
