"""The venue registry: every adapter under its venue name, clear error otherwise."""

import pytest

from cobstack.core.symbols import known_venues
from cobstack.venues.registry import ADAPTERS, make_adapter


def test_registry_names_match_adapter_venues_and_symbol_map():
    for name, cls in ADAPTERS.items():
        assert cls.venue == name and name in known_venues()
        adapter = make_adapter(name, None)
        assert adapter.auto and adapter.venue == name and adapter.live_ws_url.startswith("wss://")


def test_unknown_venue_lists_known_ones():
    with pytest.raises(ValueError, match="unknown venue 'nope'; known venues: binance, binance-coinm"):
        make_adapter("nope")
