"""The one configuration model.

Every component reads `Settings`; the same model is loaded from a YAML file, from
COBSTACK_* environment variables (nested with `__`, e.g. COBSTACK_INGEST__PUBLISH_INTERVAL_MS)
and from CLI flags, in that increasing order of precedence. The operator renders it into the
component ConfigMap and generates the CobStack CRD's `spec.stack` schema from it, so a field
added here is a field users can set everywhere.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings import YamlConfigSettingsSource

from .core.symbols import known_venues, venue_instrument

CONFIG_ENV = "COBSTACK_CONFIG"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IngestSettings(Section):
    publish_interval_ms: int = Field(100, ge=10, le=60_000, description=(
        "Snapshots per symbol are published on change, coalesced to at most one per interval."))
    ladder_levels: int = Field(25, ge=1, le=500, description="Consolidated ladder levels per side.")
    venue_depth: int = Field(200, ge=10, le=5000, description=(
        "Levels per venue book taken into consolidation (venue books themselves keep their full depth)."))
    buckets_per_side: int = Field(20, ge=1, le=500, description="Price buckets per side (also the model tensor's K).")
    bucket_sizes: dict[str, float] = Field(
        default_factory=lambda: {"BTC-USD": 10.0, "ETH-USD": 1.0},
        description="Price bucket width per canonical symbol, in USD.")
    imbalance_levels: list[int] = Field(default_factory=lambda: [1, 5, 10], description="Top-N imbalance depths.")
    quote_policy: Literal["par", "rate"] = Field("par", description=(
        "USDT/USDC to USD: `par` treats them as 1 USD; `rate` takes the rate from a reference book."))
    rate_references: dict[str, str] = Field(
        default_factory=lambda: {"USDT": "kraken-v1:USDT/USD", "USDC": "kraken-v1:USDC/USD"},
        description=("With quote_policy `rate`: the VENUE:INSTRUMENT book whose mid prices each "
                     "stablecoin in USD. A reference whose venue is not configured, or whose book is "
                     "not live, falls back to par and the snapshot says why."))
    stale_after_ms: int = Field(5_000, ge=100, le=600_000, description=(
        "A venue book with no update for this long drops out of consolidation and is flagged."))
    session_seconds: int = Field(86_400, ge=60, le=7 * 86_400, description=(
        "Volume-profile session length, anchored at UTC midnight (86400 = UTC day)."))
    stream_maxlen: int = Field(100_000, ge=100, le=100_000_000, description=(
        "Approximate retention (XADD MAXLEN ~) of each snapshot and trade stream."))
    metrics_port: int = Field(9108, ge=0, le=65535, description="Prometheus metrics and health port (0 disables).")
    metrics_host: str = Field("127.0.0.1", description="Bind address of the metrics endpoint (0.0.0.0 in a pod).")


class Endpoint(Section):
    ws_url: str = Field(description="Websocket base URL, e.g. ws://127.0.0.1:9001")
    rest_url: str | None = Field(None, description="REST base URL, e.g. http://127.0.0.1:9001")


class SimSettings(Section):
    seed: int = Field(7, description="Seed of the simulated market; same seed, same market.")
    speed: float = Field(1.0, gt=0, le=100, description="Simulated time per wall-clock second.")
    rate: float = Field(1.0, gt=0, le=1000, description="Event-rate multiplier of the simulated venues.")


class DashboardSettings(Section):
    host: str = Field("127.0.0.1", description="Bind address (read-only UI; keep loopback unless behind a Service).")
    port: int = Field(8000, ge=0, le=65535, description="HTTP port (0: any free port, logged at start).")
    ladder_levels: int = Field(20, ge=1, le=500, description=(
        "Consolidated ladder rows shown per side (at most ingest.ladder_levels are published)."))
    profile_rows: int = Field(48, ge=5, le=500, description="Volume-profile rows shown, centred on the mid.")
    heatmap_seconds: int = Field(300, ge=10, le=3600, description="Time window of the liquidity heatmap.")
    heatmap_resolution_ms: int = Field(500, ge=50, le=60_000, description=(
        "Heatmap time column width: the newest snapshot in each slot is one column."))
    trades_shown: int = Field(25, ge=1, le=1000, description="Rows of the trades tape.")
    sse_retry_ms: int = Field(1000, ge=100, le=60_000, description=(
        "Browser reconnect delay after the SSE stream drops (dashboard restart)."))


class TrainerSettings(Section):
    preset: Literal["tiny", "base", "xl"] = Field("tiny", description=(
        "Model size preset: tiny (~100k params, CPU), base (~400k), xl (~1B, transformer, GPU)."))
    mode: Literal["online", "job"] = Field("online", description=(
        "`online`: train, report, then publish live signals until stopped; `job`: exit 0 once "
        "training and the report are done (the Kubernetes Job)."))
    symbol: str | None = Field(None, description="Symbol to train on and signal for (default: the first of `symbols`).")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="`auto` uses a GPU when torch sees one.")
    threads: int = Field(1, ge=1, le=256, description=(
        "CPU threads for torch (keep 1 next to ingest in `cobstack up`)."))
    compile: bool = Field(False, description="torch.compile the model (GPU runs).")
    seed: int = Field(0, description="Seed of initialisation and batch order; same seed and data, same model.")
    window: int | None = Field(None, ge=4, le=4096, description="Snapshots per input window (default: the preset's).")
    batch_size: int | None = Field(None, ge=1, le=65536, description="Samples per step (default: the preset's).")
    lr: float | None = Field(None, gt=0, le=1, description="AdamW learning rate (default: the preset's).")
    steps: int = Field(300, ge=1, le=10_000_000, description="Optimiser steps per walk-forward fold.")
    horizons: list[int] = Field(default_factory=lambda: [10, 50, 100], min_length=1, description=(
        "Label horizons in snapshots (mid-price direction that far ahead)."))
    label: Literal["point", "smoothed"] = Field("point", description=(
        "`point`: mid h snapshots ahead vs now; `smoothed`: DeepLOB's mean of the next h mids vs the last h."))
    taker_fee_bps: float = Field(1.0, ge=0, le=100, description=(
        "Taker fee (bps) in the label threshold (half-spread + fee) and in the RL environment's fills."))
    min_snapshots: int = Field(3000, ge=100, le=100_000_000, description=(
        "History needed before training; an online trainer tails the stream until it has it."))
    max_snapshots: int = Field(200_000, ge=100, le=100_000_000, description="Most history read (newest kept).")
    folds: int = Field(1, ge=1, le=20, description="Walk-forward test blocks (one model trained per block).")
    test_fraction: float = Field(0.25, gt=0, lt=0.9, description="Share of the history held out as test blocks.")
    val_fraction: float = Field(0.15, gt=0, lt=0.9, description=(
        "Share of each training period held out (purged) to pick the step with the lowest "
        "validation loss, measured at every checkpoint (early stopping)."))
    embargo: int | None = Field(None, ge=0, description=(
        "Samples dropped between training and test beyond the label purge (default: the window)."))
    checkpoint_dir: str = Field(".cobstack/checkpoints", description=(
        "Checkpoints and reports (the Job mounts a volume, e.g. /var/lib/cobstack/checkpoints)."))
    checkpoint_every: int = Field(50, ge=1, description="Steps between atomic checkpoints.")
    log_every: int = Field(10, ge=1, description="Steps between progress records on cob:train:metrics.")
    dqn_steps: int = Field(1500, ge=0, description="DQN gradient steps after supervised training (0: no RL).")
    rl_venue: str | None = Field(None, description="Venue whose own levels fill the RL agent (default: the first of `venues`).")
    rl_unit_usd: float = Field(1000.0, gt=0, description="Notional of one RL position unit, in USD.")
    signal_horizon: int | None = Field(None, ge=1, description=(
        "Horizon whose prediction is published as the live signal (default: the first of `horizons`)."))

    @field_validator("horizons")
    @classmethod
    def _positive_horizons(cls, horizons: list[int]) -> list[int]:
        if any(h < 1 for h in horizons) or len(set(horizons)) != len(horizons):
            raise ValueError(f"horizons must be distinct snapshot counts >= 1, got {horizons}")
        return horizons

    @model_validator(mode="after")
    def _signal_horizon_is_predicted(self) -> TrainerSettings:
        if self.signal_horizon is not None and self.signal_horizon not in self.horizons:
            raise ValueError(f"signal_horizon {self.signal_horizon} is not one of horizons {self.horizons}")
        return self


class ExecutorSettings(Section):
    mode: Literal["paper", "live"] = Field("paper", description="`live` is refused until a live adapter exists.")
    consumer: str = Field("executor", min_length=1, description=(
        "Consumer name in the executor's Redis consumer group; keep it stable across restarts so "
        "a restarted executor takes its own unacknowledged signals back at once."))
    starting_cash: float = Field(1_000_000.0, gt=0, description="Paper account cash at the first start, USD.")
    target_notional: float = Field(10_000.0, gt=0, description=(
        "Position a signal aims for, USD at the mid: long this much on `buy`, short on `sell`; `hold` keeps the position."))
    min_confidence: float = Field(0.5, ge=0, le=1, description="Signals less confident than this are treated as `hold`.")
    min_order_notional: float = Field(10.0, ge=0, description="Smaller adjustments to the target are not traded, USD.")
    taker_fee_bps: dict[str, float] = Field(
        default_factory=lambda: {"binance": 10.0, "binance-usdm": 5.0, "binance-coinm": 5.0,
                                 "coinbase": 60.0, "kraken": 40.0, "kraken-v1": 40.0, "okx": 10.0,
                                 "bybit": 10.0, "bitstamp": 40.0},
        description="Per-venue taker fee, bps of notional (the paper venue only takes liquidity: IOC orders).")
    default_taker_fee_bps: float = Field(20.0, ge=0, le=1000, description="Taker fee of a venue missing from taker_fee_bps, bps.")
    latency_ms: dict[str, float] = Field(
        default_factory=lambda: {"binance": 5.0, "coinbase": 10.0, "kraken-v1": 15.0},
        description="Per-venue order latency: a child order fills against the book as of decision + latency.")
    default_latency_ms: float = Field(10.0, ge=0, le=10_000, description="Latency of a venue missing from latency_ms.")
    max_slippage_bps: float = Field(50.0, gt=0, le=10_000, description=(
        "Routing limit: no unit is bought above mid * (1 + this) or sold below mid * (1 - this)."))
    max_position_notional: float = Field(50_000.0, gt=0, description=(
        "Risk: largest |position| per symbol after an order (in-flight orders included), USD at the mid."))
    max_order_notional: float = Field(25_000.0, gt=0, description="Risk: largest routed notional of one order, USD.")
    max_notional_per_minute: float = Field(250_000.0, gt=0, description=(
        "Risk: most routed notional over the trailing 60 s, all symbols, USD."))
    max_drawdown: float = Field(20_000.0, gt=0, description=(
        "Kill switch: trading stops (until a `resume` command) once equity falls more than this below its peak, USD."))
    stale_book_ms: int = Field(2_000, ge=10, le=600_000, description=(
        "No trading on a snapshot older than this (at decision and at each child's arrival), nor on venues whose own book is."))
    stale_signal_ms: int = Field(2_000, ge=10, le=3_600_000, description=(
        "No trading on a signal computed from a snapshot older than this at decision."))
    claim_idle_ms: int = Field(30_000, ge=100, le=3_600_000, description=(
        "Signals pending this long for another consumer (a dead executor) are claimed (XAUTOCLAIM)."))
    batch: int = Field(256, ge=1, le=5_000, description="Most signals read and committed in one atomic step.")
    pnl_interval_ms: int = Field(1_000, ge=50, le=600_000, description="Mark-to-market (PnL record, drawdown check) period.")
    stream_maxlen: int = Field(100_000, ge=100, le=100_000_000, description="Approximate retention of each cob:exec:* stream.")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COBSTACK_", env_nested_delimiter="__", extra="forbid")

    symbols: list[str] = Field(default_factory=lambda: ["BTC-USD", "ETH-USD"], min_length=1,
                               description="Canonical symbols (BASE-QUOTE, USD family consolidated).")
    venues: list[str] = Field(default_factory=lambda: ["binance", "coinbase", "kraken-v1"], min_length=1,
                              description="Venues ingest connects to, one connection each.")
    source: Literal["sim", "live"] = Field("sim", description="`sim`: simulated venues on loopback; `live`: public venue feeds.")
    redis_url: str | None = Field(None, description="Redis URL for the bus; unset runs on the embedded in-process bus.")
    endpoints: dict[str, Endpoint] = Field(default_factory=dict, description=(
        "Per-venue endpoint overrides (a proxy, or simulated venues served by another process). "
        "With source `sim`, venues listed here are not simulated in-process."))
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    sim: SimSettings = Field(default_factory=SimSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    trainer: TrainerSettings = Field(default_factory=TrainerSettings)
    executor: ExecutorSettings = Field(default_factory=ExecutorSettings)

    @field_validator("venues")
    @classmethod
    def _known_venues(cls, venues: list[str]) -> list[str]:
        unknown = [v for v in venues if v not in known_venues()]
        if unknown:
            raise ValueError(f"unknown venue(s) {unknown}; known: {', '.join(known_venues())}")
        if len(set(venues)) != len(venues):
            raise ValueError(f"venues listed twice: {venues}")
        return venues

    @field_validator("symbols")
    @classmethod
    def _canonical_symbols(cls, symbols: list[str]) -> list[str]:
        out = [s.upper() for s in symbols]
        for s in out:
            venue_instrument("coinbase", s)  # raises a clear ValueError for a non BASE-QUOTE name
        return out

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = os.environ.get(CONFIG_ENV)
        if path:
            if not Path(path).is_file():
                raise FileNotFoundError(f"{CONFIG_ENV}={path}: no such config file")
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)

    def bucket_size(self, symbol: str) -> float | None:
        return self.ingest.bucket_sizes.get(symbol)


def load_settings(config_file: str | None = None, **overrides: Any) -> Settings:
    """Settings from defaults < YAML file < environment < explicit overrides (CLI flags)."""
    if config_file:
        os.environ[CONFIG_ENV] = config_file
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
