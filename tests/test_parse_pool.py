"""Parsing in a worker process (the default, poll.parse_workers: 1): errors come back, a dead worker is replaced."""

from __future__ import annotations

import asyncio
import os
import signal
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from feedserver import FeedServer

from watcher.config import load_config
from watcher.daemon import open_runtime

RSS = (
    b"<?xml version='1.0'?><rss version='2.0'><channel><title>Wire</title><link>https://w.example/</link>"
    b"<item><title>Kim Jong Un arrives in Beijing</title><link>https://w.example/1</link><guid>1</guid></item>"
    b"</channel></rss>"
)


@pytest.fixture
def config(tmp_path: Path, feed_server: FeedServer) -> Path:
    (tmp_path / "watchlist.yaml").write_text("rules: []\n", encoding="utf-8")
    cfg = tmp_path / "watcher.yaml"
    cfg.write_text(
        f"database: {tmp_path / 'w.db'}\npoll: {{parse_workers: 1}}\nfeeds:\n"
        f"  - {{name: broken, url: '{feed_server.url('/broken')}'}}\n"
        f"  - {{name: wire, url: '{feed_server.url('/wire')}'}}\n",
        encoding="utf-8",
    )
    feed_server.html_page("/broken")
    feed_server.set("/wire", body=RSS)
    return cfg


@pytest.mark.slow
def test_a_parse_error_in_the_worker_does_not_break_the_pool(config: Path) -> None:
    async def run() -> list[tuple[str, str, int]]:
        async with open_runtime(load_config(config)) as rt:
            assert isinstance(rt.pipeline.executor, ProcessPoolExecutor)
            out = []
            for name in ("broken", "wire"):
                report = await rt.pipeline.poll_feed(rt.pipeline.feeds[name], force=True)
                out.append((report.feed, report.status, report.new))
            return out

    assert asyncio.run(run()) == [("broken", "error", 0), ("wire", "ok", 1)]


@pytest.mark.slow
def test_a_dead_parser_process_is_replaced(config: Path, feed_server: FeedServer) -> None:
    async def run() -> tuple[str | None, str, int]:
        async with open_runtime(load_config(config)) as rt:
            pool = rt.pipeline.executor
            assert isinstance(pool, ProcessPoolExecutor)
            await rt.pipeline.poll_feed(rt.pipeline.feeds["wire"], force=True)  # the worker is up
            for pid in list(pool._processes):  # what an OOM kill does to it
                os.kill(pid, signal.SIGKILL)
            feed_server.set(
                "/wire", body=RSS.replace(b"<guid>1</guid>", b"<guid>2</guid>").replace(b"arrives", b"lands")
            )
            died = await rt.pipeline.poll_feed(rt.pipeline.feeds["wire"], force=True)
            feed_server.set(
                "/wire", body=RSS.replace(b"<guid>1</guid>", b"<guid>3</guid>").replace(b"arrives", b"leaves")
            )
            again = await rt.pipeline.poll_feed(rt.pipeline.feeds["wire"], force=True)
            assert rt.pipeline.executor is not pool
            return died.error, again.status, again.new

    assert asyncio.run(run()) == ("the parser process died while reading this feed; restarted", "ok", 1)


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(
            lambda: __import__("watcher.errors").errors.ParseError("wire", "empty body"), id="parse"
        ),
        pytest.param(
            lambda: __import__("watcher.errors").errors.FetchError("wire", "HTTP 503", retry_after=60.0),
            id="fetch",
        ),
        pytest.param(
            lambda: __import__("watcher.errors").errors.DeliveryError("hook", "HTTP 500"), id="delivery"
        ),
        pytest.param(lambda: __import__("watcher.errors").errors.ConfigError("bad"), id="config"),
    ],
)
def test_errors_cross_a_process_boundary_intact(error: object) -> None:
    import pickle

    original = error()  # type: ignore[operator]
    copy = pickle.loads(pickle.dumps(original))
    assert (type(copy), str(copy), vars(copy)) == (type(original), str(original), vars(original))
