"""Unit-test fixtures shared by the venue and replay tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def recordings_dir() -> Path:
    """The shared real-traffic captures: $COBSTACK_RECORDINGS, else <repo>/../shared/recordings.

    A COBSTACK_RECORDINGS that points nowhere is a misconfiguration and fails; a checkout
    without the default directory skips, saying where the captures were looked for."""
    env = os.environ.get("COBSTACK_RECORDINGS")
    if env:
        path = Path(env)
        if not path.is_dir():
            pytest.fail(f"COBSTACK_RECORDINGS={env} is not a directory; point it at the "
                        "shared recordings (see recordings/README.md) or unset it")
        return path
    path = REPO.parent / "shared" / "recordings"
    if not path.is_dir():
        pytest.skip(f"recorded exchange traffic not found at {path}; set COBSTACK_RECORDINGS")
    return path
