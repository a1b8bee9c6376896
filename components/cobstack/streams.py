"""Stream names: the contract between the one writer of each stream and its readers.

Documented with their payloads in docs/streams.md. Each stream has exactly one writer.
"""

HEALTH_STREAM = "cob:health"  # writer: ingest


def book_stream(symbol: str) -> str:
    """Consolidated snapshots of one canonical symbol (writer: ingest)."""
    return f"cob:book:{symbol}"


def trades_stream(symbol: str) -> str:
    """Trades of one canonical symbol from every venue (writer: ingest)."""
    return f"cob:trades:{symbol}"


SIGNALS_STREAM = "cob:signals"  # model signals, trainer/signals.py (writer: trainer; reader: executor)
TRAIN_METRICS_STREAM = "cob:train:metrics"  # training progress and scores (writer: trainer)
TRAIN_REPORT_STREAM = "cob:train:report"  # out-of-sample evaluation report (writer: trainer)

# executor (writer of every cob:exec:* stream; records in executor/records.py)
EXEC_ORDERS_STREAM = "cob:exec:orders"  # one routed order per traded signal
EXEC_FILLS_STREAM = "cob:exec:fills"  # one per venue child order: fill, partial fill or cancel
EXEC_POSITIONS_STREAM = "cob:exec:positions"  # a symbol's position after its fills
EXEC_PNL_STREAM = "cob:exec:pnl"  # account marked to market, about once a second
EXEC_RISK_STREAM = "cob:exec:risk"  # every blocked signal with its rule and reason; halts, kills
EXEC_CONTROL_STREAM = "cob:exec:control"  # halt/resume commands (writer: an operator, `python -m cobstack.executor.control`)
EXEC_STATE_KEY = "cob:exec:state"  # the executor's durable account (a hash, not a stream; Bus.commit)
