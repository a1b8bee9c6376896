"""The `cobstack` command. Flags map onto the one Settings model (file < env < flags)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys

import yaml
from pydantic import ValidationError

from .config import load_settings


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config file (also COBSTACK_CONFIG)")
    p.add_argument("--redis", dest="redis_url", metavar="URL",
                   help="Redis URL for the bus (default: the embedded in-process bus)")
    p.add_argument("--symbols", help="comma-separated canonical symbols, e.g. BTC-USD,ETH-USD")
    p.add_argument("--venues", help="comma-separated venues, e.g. binance,coinbase,kraken-v1")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--sim", dest="source", action="store_const", const="sim",
                     help="simulated venues on loopback (default)")
    src.add_argument("--live", dest="source", action="store_const", const="live",
                     help="public venue feeds")
    p.add_argument("--duration", type=float, metavar="S",
                   help="run S seconds, print a JSON summary and exit 0")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="set any config field, e.g. --set ingest.publish_interval_ms=50 "
                        "--set trainer.preset=base (VALUE is parsed as YAML)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def parse_overrides(pairs: list[str]) -> dict:
    """["a.b=1", "c=x"] -> {"a": {"b": 1}, "c": "x"}; values parsed as YAML scalars/lists."""
    out: dict = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {pair!r}: expected KEY=VALUE, e.g. ingest.publish_interval_ms=50")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(raw)
    return out


def _settings(args: argparse.Namespace):
    split = lambda v: [x.strip() for x in v.split(",") if x.strip()] if v else None  # noqa: E731
    return load_settings(args.config, redis_url=args.redis_url, source=args.source,
                         symbols=split(args.symbols), venues=split(args.venues),
                         **parse_overrides(args.overrides))


def _run(args: argparse.Namespace, components: list[str]) -> int:
    from .stack import run_components

    summary = asyncio.run(run_components(_settings(args), components, args.duration))
    if args.duration is not None:
        print(json.dumps(summary, indent=2, sort_keys=True))
    for name, why in summary["failed"].items():
        print(f"cobstack: {name} failed: {why} (see the log above)", file=sys.stderr)
    return 1 if summary["failed"] else 0


def cmd_up(args: argparse.Namespace) -> int:
    from .stack import available_consumers

    return _run(args, ["ingest", *available_consumers()])


def cmd_ingest(args: argparse.Namespace) -> int:
    return _run(args, ["ingest"])


def cmd_component(name: str):
    return lambda args: _run(args, [name])


def cmd_sim(args: argparse.Namespace) -> int:
    """Serve the simulated venues alone; print their endpoints as one JSON line (a config
    snippet for `endpoints:`) so an ingest in another process or pod can connect to them."""
    from .sim.server import start_sim

    settings = _settings(args)

    async def serve() -> None:
        sim = await start_sim(settings.venues, settings.symbols, seed=settings.sim.seed,
                              speed=settings.sim.speed, rate=settings.sim.rate, host=args.host)
        print(json.dumps({"endpoints": {v: {"ws_url": ws, "rest_url": rest}
                                        for v, (ws, rest) in sim.endpoints.items()}}), flush=True)
        try:
            await asyncio.sleep(args.duration if args.duration is not None else float("inf"))
        finally:
            await sim.stop()

    asyncio.run(serve())
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .replay import replay

    summary = replay(args.file, args.venue, depth=args.depth)
    data = summary.as_dict()
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        print(f"{args.file}: {data['messages']} messages, {data['updates']} updates, "
              f"{data['checksums_ok']} checksums verified, {data['checksum_failures']} failed, "
              f"{data['gaps']} gaps, {data['resyncs']} resyncs -> "
              f"{'consistent' if data['consistent'] else 'INCONSISTENT'}")
    return 0 if data["consistent"] else 1


def cmd_record(args: argparse.Namespace) -> int:
    from .record import record

    settings = _settings(args)
    counts = asyncio.run(record(settings, args.out, args.duration or 10.0))
    print(json.dumps(counts, indent=2, sort_keys=True))
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import run_bench

    results = run_bench(args.which, quick=args.quick)
    print(json.dumps(results, indent=2, sort_keys=True))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cobstack", description=(
        "Consolidated order book: one ingest, one stream, many consumers."))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("up", help="ingest plus every consumer in one process (embedded bus unless --redis)")
    _common(p)
    p.set_defaults(func=cmd_up)
    p = sub.add_parser("ingest", help="the single writer: venues -> consolidated books -> streams")
    _common(p)
    p.set_defaults(func=cmd_ingest)
    for name, verb, text in (("dashboard", "dashboard", "the HTMX dashboard (reads the streams)"),
                             ("trainer", "train", "the model trainer (reads the streams)"),
                             ("executor", "execute", "the paper-trading executor (reads the streams)")):
        p = sub.add_parser(verb, help=text)
        _common(p)
        p.set_defaults(func=cmd_component(name))

    p = sub.add_parser("sim", help="serve the simulated venues alone and print their endpoints")
    _common(p)
    p.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("replay", help="replay a capture through the venue adapter and report consistency")
    p.add_argument("file", help="capture JSONL (format: ../shared/recordings/README.md)")
    p.add_argument("--venue", required=True, help="adapter to use, e.g. kraken-v1, binance, coinbase")
    p.add_argument("--depth", type=int, help="book depth to keep (default: the venue's)")
    p.add_argument("--json", action="store_true", help="print the machine-readable summary")
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("record", help="record venue traffic (live or simulated) in the capture format")
    _common(p)
    p.add_argument("--out", required=True, help="capture JSONL to write")
    p.set_defaults(func=cmd_record)

    p = sub.add_parser("bench", help="run the benchmarks of docs/benchmarks.md")
    p.add_argument("which", nargs="*", help="benchmarks to run (default: all)")
    p.add_argument("--quick", action="store_true", help="shorter runs (smoke test of the bench itself)")
    p.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        return args.func(args)
    except ValidationError as e:
        print(f"cobstack: invalid configuration:\n{e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, ValueError) as e:
        print(f"cobstack: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
