"""Unit-test fixtures shared by the venue and replay tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cobstack.capture import RECORDINGS_ENV, recordings_dir as find_recordings


@pytest.fixture(scope="session")
def recordings_dir() -> Path:
    """The shared captures. Missing captures fail where they must exist (an explicit
    COBSTACK_RECORDINGS, or CI, which always has ../shared beside the clone); a developer's
    checkout without ../shared/recordings skips these tests, saying where it looked."""
    try:
        return find_recordings()
    except FileNotFoundError as e:
        if os.environ.get(RECORDINGS_ENV) or os.environ.get("CI"):
            pytest.fail(str(e))
        pytest.skip(str(e))
