"""Unit-test fixtures shared by the venue and replay tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cobstack.capture import RECORDINGS_ENV, recordings_dir as find_recordings


@pytest.fixture(scope="session")
def recordings_dir() -> Path:
    """The shared captures. An explicit COBSTACK_RECORDINGS that points nowhere fails; a
    checkout without the default ../shared/recordings skips, saying where it looked."""
    try:
        return find_recordings()
    except FileNotFoundError as e:
        if os.environ.get(RECORDINGS_ENV):
            pytest.fail(str(e))
        pytest.skip(str(e))
