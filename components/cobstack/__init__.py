"""cobstack: one consolidated order book per instrument, shared through one stream."""

__version__ = "0.1.0"
