"""`cobstack-operator`: runs the kopf operator in-process, with metrics and a liveness probe."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

import kopf
from prometheus_client import start_http_server

from .handlers import Reconciler, configure, register
from .kube import Kube


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cobstack-operator", description=(
        "Reconcile CobStack resources into Redis, ingest, trainer, executor and dashboard children."))
    scope = p.add_mutually_exclusive_group(required=True)
    scope.add_argument("--all-namespaces", action="store_true", help="watch CobStacks in every namespace")
    scope.add_argument("--namespace", "-n", action="append", metavar="NS",
                       help="watch only this namespace (repeatable)")
    p.add_argument("--metrics-port", type=int, default=9090, help="Prometheus /metrics port (0 disables)")
    p.add_argument("--metrics-host", default="0.0.0.0")
    p.add_argument("--liveness", default="http://0.0.0.0:8080/healthz", metavar="URL",
                   help="kopf liveness endpoint ('' disables)")
    p.add_argument("--resync-seconds", type=float, default=60.0,
                   help="re-reconcile every CobStack this often (status refresh, missed events)")
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return p


async def _serve(args: argparse.Namespace) -> None:
    kube = Kube()
    reconciler = Reconciler(kube)
    registry = kopf.OperatorRegistry()
    register(registry, reconciler)
    settings = kopf.OperatorSettings()
    configure(settings)
    resync = asyncio.create_task(reconciler.resync_forever(args.resync_seconds))
    try:
        await kopf.operator(
            registry=registry, settings=settings, standalone=True,
            clusterwide=args.all_namespaces, namespaces=args.namespace or (),
            liveness_endpoint=args.liveness or None,
        )
    finally:
        resync.cancel()
        kube.close()


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    if args.log_level != "DEBUG":
        # kopf reports every watch event it handled; the operator's own log says what changed.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    if args.metrics_port:
        start_http_server(args.metrics_port, args.metrics_host)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
