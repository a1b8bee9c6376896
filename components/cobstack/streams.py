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
