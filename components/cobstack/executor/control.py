"""Halt or resume the executor: `python -m cobstack.executor.control halt --redis URL --reason "..."`.

Appends one command to the control stream. The executor reads it through its consumer
group like a signal, so the halt takes effect exactly once, in publish order with the
signals around it, and survives restarts (it is part of the committed ledger). `resume`
also clears a fired drawdown kill switch, restarting the drawdown count from that moment.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

from ..bus import BusUnavailable, make_bus
from ..streams import EXEC_CONTROL_STREAM
from .records import COMMANDS, control


async def send(redis_url: str, command: str, reason: str) -> str:
    bus = make_bus(redis_url)
    try:
        return await bus.publish(EXEC_CONTROL_STREAM, control(command, reason, time.time_ns()))
    finally:
        await bus.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cobstack.executor.control", description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=COMMANDS)
    p.add_argument("--redis", required=True, metavar="URL", help="Redis URL of the stack's bus")
    p.add_argument("--reason", default="", help="why (shown in the risk stream and on the dashboard)")
    args = p.parse_args(argv)
    try:
        entry = asyncio.run(send(args.redis, args.command, args.reason))
    except BusUnavailable as e:
        print(f"executor control: {e}", file=sys.stderr)
        return 1
    print(f"{args.command} sent to {EXEC_CONTROL_STREAM} as entry {entry}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
