"""Shared fixtures. Keep each fixture small and documented; helpers live in their own modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from feedserver import FeedServer


@pytest.fixture
def anyio_backend() -> str:
    """Async tests (``@pytest.mark.anyio``) run on asyncio: watcher is built on it."""
    return "asyncio"


@pytest.fixture
def feed_server() -> Iterator[FeedServer]:
    """A real HTTP server on 127.0.0.1 with routes set at runtime (see tests/feedserver.py)."""
    with FeedServer() as server:
        yield server
