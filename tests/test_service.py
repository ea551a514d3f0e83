"""The daemon as a service: sd_notify over a real socket, health and metrics over real HTTP, reload by
SIGHUP and by saving the watch list, one daemon per database. Feeds come from a loopback server, alerts
go to a loopback webhook receiver."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest
from feedserver import FeedServer
from receivers import WebhookSink, wait_for, webhook_sink

from watcher.atomicwrite import write_atomic
from watcher.config import load_config
from watcher.daemon import Daemon
from watcher.errors import StoreError, WatcherError
from watcher.yamledit import add_feed, add_rule, build_rule, remove_feed

WATCHLIST = """\
# phrases that appear in no real headline, one rule each
rules:
  - {id: alpha, title: Alpha rule, any: [alpha signal]}
  - {id: charlie, title: Charlie rule, any: [charlie signal]}
"""
ITEMS = {
    "alpha": "Ministry reports an alpha signal",
    "bravo": "Observers note a bravo signal",
    "charlie": "Analysts see a charlie signal",
    "delta": "Officials deny a delta signal",
}


def rss(*keys: str) -> bytes:
    now = format_datetime(datetime.now(UTC))
    items = "".join(
        f"<item><title>{ITEMS[k]}</title><link>https://news.example/{k}</link><guid>{k}</guid>"
        f"<pubDate>{now}</pubDate></item>"
        for k in keys
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>Wire</title>"
        f"<link>https://news.example/</link><description>d</description>{items}</channel></rss>"
    ).encode()


@pytest.fixture
def hook() -> Iterator[WebhookSink]:
    with webhook_sink() as sink:
        yield sink


@pytest.fixture
def config(tmp_path: Path, feed_server: FeedServer, hook: WebhookSink) -> Path:
    (tmp_path / "watchlist.yaml").write_text(WATCHLIST)
    feed_server.set("/wire.xml", body=rss("alpha"))
    path = tmp_path / "watcher.yaml"
    path.write_text(
        f"database: {tmp_path / 'watcher.db'}\n"
        "poll: {interval: 1s, jitter: 0s, parse_workers: 0}\n"
        "http: {enabled: true, listen: '127.0.0.1:0'}\n"
        f"feeds:\n  - {{name: wire, url: '{feed_server.url('/wire.xml')}'}}\n"
        f"channels:\n  hook: {{url: '{hook.url()}'}}\n"
    )
    return path


def titles(hook: WebhookSink) -> list[str]:
    with hook.lock:
        return [str(p.get("title", "")) for p in hook.posts]


class NotifySocket:
    """A unix datagram socket like systemd's, collecting what the daemon sends."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages: list[str] = []

    def wait(self, field: str, timeout: float = 20.0) -> str:
        """The first message (not yet seen) holding ``field`` as a line; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        start = len(self.messages)
        while time.monotonic() < deadline:
            for m in self.messages[start:]:
                if field in m.split("\n"):
                    return m
            with contextlib.suppress(TimeoutError, BlockingIOError):
                self.messages.append(self.sock.recv(4096).decode())
        raise AssertionError(f"no {field} within {timeout}s; got {self.messages}")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify(config: Path) -> Iterator[NotifySocket]:
    """systemd's side of the notify protocol, closed after the test."""
    sock = NotifySocket(config.parent / "notify.sock")
    yield sock
    sock.close()


@pytest.mark.anyio
async def test_service_in_process_health_metrics_sighup_and_one_daemon_per_database(
    config: Path,
    feed_server: FeedServer,
    hook: WebhookSink,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    notify: NotifySocket,
) -> None:
    caplog.set_level("INFO")
    monkeypatch.setenv("NOTIFY_SOCKET", notify.path)
    loaded = load_config(config)
    daemon = Daemon(loaded, config_path=config, watch=False)  # reload only on SIGHUP here
    task = asyncio.create_task(daemon.run())
    try:
        ready = await asyncio.to_thread(notify.wait, "READY=1")
        assert "STATUS=polling 1 feed with 2 rules; outbox 0" in ready.split("\n")
        server = daemon.service.server
        assert server is not None
        async with httpx.AsyncClient(base_url=server.url) as client:
            health = await client.get("/healthz")
            assert (health.status_code, health.text) == (200, "ok\n")
            await asyncio.to_thread(wait_for, lambda: len(titles(hook)) == 1, 20)
            metrics = (await client.get("/metrics")).text
        assert re.search(r'^watcher_polls_total\{feed="wire",status="ok"\} 1\.0$', metrics, re.M)
        assert 'watcher_matches_total{rule="alpha"} 1.0' in metrics
        assert 'watcher_alerts_sent_total{channel="hook"} 1.0' in metrics

        with pytest.raises(
            StoreError, match=r"another watcher \(pid \d+\) is already running on this database"
        ):
            await Daemon(loaded, config_path=config, watch=False).run()

        add_rule(config.parent / "watchlist.yaml", build_rule("bravo", "Bravo rule", any_=["bravo signal"]))
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.to_thread(notify.wait, "RELOADING=1")
        await asyncio.to_thread(notify.wait, "READY=1")
        assert daemon.service.reloads == 1
        assert "reload: rules added: bravo" in caplog.messages
        feed_server.set("/wire.xml", body=rss("alpha", "bravo"))
        assert await asyncio.to_thread(wait_for, lambda: len(titles(hook)) == 2, 20), titles(hook)
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 15)
    notify.wait("STOPPING=1")
    notify.close()
    assert [t.split(": ")[0] for t in titles(hook)] == ["[MEDIUM] Alpha rule", "[MEDIUM] Bravo rule"]


@pytest.mark.slow
@pytest.mark.anyio
async def test_feeds_added_removed_and_retimed_live(
    config: Path, feed_server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO")
    feed_server.set("/second.xml", body=rss("charlie"))
    daemon = Daemon(load_config(config), config_path=config)  # watching the files this time
    task = asyncio.create_task(daemon.run())

    def hits(path: str) -> int:
        return feed_server.hits(path)

    try:
        assert await asyncio.to_thread(wait_for, lambda: hits("/wire.xml") >= 1, 20)
        add_feed(config, {"name": "second", "url": feed_server.url("/second.xml"), "interval": "1s"})
        assert await asyncio.to_thread(wait_for, lambda: hits("/second.xml") >= 2, 20)
        remove_feed(config, "wire")
        assert await asyncio.to_thread(wait_for, lambda: "reload: feeds removed: wire" in caplog.messages, 20)
        wire, second = hits("/wire.xml"), hits("/second.xml")
        assert await asyncio.to_thread(wait_for, lambda: hits("/second.xml") >= second + 2, 20)
        assert hits("/wire.xml") <= wire + 1  # at most a poll already in flight
        assert daemon.scheduler is not None
        assert sorted(j.id for j in daemon.scheduler.get_jobs()) == ["feed:second", "ops", "prune"]
        text = await asyncio.to_thread(config.read_text)
        write_atomic(config, text.replace("interval: 1s\n", "interval: 1h\n"))  # the second feed's
        assert await asyncio.to_thread(
            wait_for, lambda: "reload: feeds changed: second (interval)" in caplog.messages, 20
        )
        job = daemon.scheduler.get_job("feed:second")
        assert job is not None and job.trigger.interval == timedelta(hours=1)
        assert job.next_run_time - datetime.now(UTC) <= timedelta(hours=1)  # retimed, not skipped
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 15)
    assert "reload: feeds added: second" in caplog.messages


def _listen_on_taken_port(config: Path, port: int) -> None:
    config.write_text(config.read_text().replace("listen: '127.0.0.1:0'", f"listen: '127.0.0.1:{port}'"))


@pytest.mark.anyio
async def test_a_taken_health_port_stops_the_start_with_a_clear_message(config: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        await asyncio.to_thread(_listen_on_taken_port, config, port)
        with pytest.raises(
            WatcherError, match=rf"^http.listen 127.0.0.1:{port}: cannot listen there: .*in use"
        ):
            await Daemon(load_config(config), config_path=config, watch=False).run()


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


@pytest.mark.slow
@pytest.mark.anyio
async def test_a_feed_down_then_back_sends_one_ops_alert_each_way(
    config: Path, feed_server: FeedServer, hook: WebhookSink
) -> None:
    _append(config, "ops_channel: hook\nfeed_failure_alert: 1s\n")
    feed_server.set("/wire.xml", body=b"", status=503)
    daemon = Daemon(load_config(config), config_path=config, watch=False)
    task = asyncio.create_task(daemon.run())
    try:
        assert await asyncio.to_thread(wait_for, lambda: feed_server.hits("/wire.xml") >= 2, 20)
        assert [e.event for e in daemon.service.check_ops_now()] == ["feed-down"]
        assert daemon.service.check_ops_now() == []  # once per episode
        assert await asyncio.to_thread(wait_for, lambda: len(titles(hook)) == 1, 20)
        feed_server.set("/wire.xml", body=rss())
        hits = feed_server.hits("/wire.xml")
        assert await asyncio.to_thread(wait_for, lambda: feed_server.hits("/wire.xml") > hits + 1, 30)
        assert [e.event for e in daemon.service.check_ops_now()] == ["feed-recovered"]
        assert await asyncio.to_thread(wait_for, lambda: len(titles(hook)) == 2, 20)
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 15)
    assert titles(hook) == ["[HIGH] Feed health: feed wire", "[INFO] Feed health: feed wire"]
    assert "HTTP 503" in hook.messages()[0] and "recovered" in hook.messages()[1]


def _daemon(config: Path, stderr: object, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "--config", str(config)],
        cwd=config.parent,
        stderr=stderr,  # type: ignore[arg-type]
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


@pytest.mark.slow
def test_systemd_notify_protocol_end_to_end(
    config: Path, feed_server: FeedServer, notify: NotifySocket
) -> None:
    env = {"NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"}  # a ping every 0.5 s
    with open(config.parent / "daemon.log", "wb") as err:
        proc = _daemon(config, err, env)
        try:
            ready = notify.wait("READY=1")
            assert ready.split("\n") == [
                "READY=1",
                "STATUS=polling 1 feed with 2 rules; outbox 0",
                f"MAINPID={proc.pid}",
            ]
            assert notify.wait("WATCHDOG=1") == "WATCHDOG=1"
            assert notify.wait("WATCHDOG=1") == "WATCHDOG=1"
            assert wait_for(lambda: feed_server.hits("/wire.xml") >= 1, 20)
            proc.send_signal(signal.SIGTERM)
            assert notify.wait("STOPPING=1").startswith("STOPPING=1")
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            notify.close()
    assert notify.messages[0].startswith(
        "READY=1"
    )  # nothing before the config, database and rules are loaded


class PollClock:
    """Records when the feed server's hit count for a path goes up (sampled every 10 ms)."""

    def __init__(self, server: FeedServer, path: str) -> None:
        self.server, self.path = server, path
        self.times: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        seen = 0
        while not self._stop.is_set():
            hits = self.server.hits(self.path)
            if hits > seen:
                self.times.extend([time.monotonic()] * (hits - seen))
                seen = hits
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def max_gap(self, since: float) -> float:
        ts = [t for t in self.times if t >= since]
        return max((b - a for a, b in itertools.pairwise(ts)), default=0.0)


@pytest.mark.slow
def test_live_watchlist_edits_lose_no_poll(config: Path, feed_server: FeedServer, hook: WebhookSink) -> None:
    watchlist = config.parent / "watchlist.yaml"
    log_path = config.parent / "daemon.log"
    clock = PollClock(feed_server, "/wire.xml")

    def log_has(pattern: str) -> bool:
        return re.search(pattern, log_path.read_text(errors="replace"), re.M) is not None

    with open(log_path, "wb") as err:
        proc = _daemon(config, err)
        try:
            assert wait_for(
                lambda: titles(hook) == ["[MEDIUM] Alpha rule: Ministry reports an alpha signal"], 20
            )
            started = time.monotonic()

            # 1. a valid edit (saved by `watcher rules add`): the new rule is in force without a restart
            saved = time.monotonic()
            add_rule(watchlist, build_rule("bravo", "Bravo rule", any_=["bravo signal"]))
            assert wait_for(lambda: log_has(r"watcher\.service: reload: rules added: bravo$"), 20)
            in_force = time.monotonic() - saved
            feed_server.set("/wire.xml", body=rss("alpha", "bravo"))
            assert wait_for(lambda: len(titles(hook)) == 2, 20), titles(hook)

            # 2. an invalid edit (an editor's save): refused with its position, the old rules stay in force
            text = (
                watchlist.read_text()
                + "  - {id: delta, title: Delta rule, all: [{entity: nobody}, delta signal]}\n"
            )
            write_atomic(watchlist, text)
            assert wait_for(
                lambda: log_has(
                    r"^\S* ?ERROR +watcher\.service: watchlist\.yaml:\d+:\d+: unknown entity 'nobody'"
                ),
                20,
            )
            assert log_has(r"reload refused \(1 problem\): still running on the version loaded before")
            feed_server.set("/wire.xml", body=rss("alpha", "bravo", "charlie", "delta"))
            assert wait_for(lambda: len(titles(hook)) == 3, 20), titles(hook)
            hits = feed_server.hits("/wire.xml")
            assert wait_for(lambda: feed_server.hits("/wire.xml") >= hits + 3, 20)  # delta had its chances
            ended = time.monotonic()

            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            clock.stop()
    assert titles(hook) == [
        "[MEDIUM] Alpha rule: Ministry reports an alpha signal",
        "[MEDIUM] Bravo rule: Observers note a bravo signal",
        "[MEDIUM] Charlie rule: Analysts see a charlie signal",
    ]
    polls = [t for t in clock.times if started <= t <= ended]
    gap = clock.max_gap(started)
    print(
        f"reload test: new rule in force {in_force:.2f}s after the save; {len(polls)} polls in "
        f"{ended - started:.1f}s across two reloads; longest gap between polls {gap:.2f}s (interval 1s)"
    )
    assert gap < 2.0, f"a poll was lost: {gap:.2f}s between two polls of a 1s feed"
    assert len(polls) >= (ended - started) - 2
