"""/healthz and /metrics over real HTTP on 127.0.0.1, against a real SQLite database."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from watcher.errors import WatcherError
from watcher.health import Health, HealthCheck, HealthServer, parse_listen, probe_database
from watcher.metrics import Metrics
from watcher.store import Store

pytestmark = pytest.mark.anyio


@dataclass
class Report:
    """A poll's outcome as watcher.pipeline.PollReport carries it."""

    feed: str
    status: str
    new: int = 0
    edited: int = 0
    duplicates: int = 0
    seen: int = 0
    elapsed: float = 0.0


@dataclass
class Daemonish:
    running: bool = True


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store.open(tmp_path / "w.db")
    yield s
    s.close()


@pytest.fixture
async def served(store: Store) -> AsyncIterator[tuple[HealthServer, Daemonish, Metrics]]:
    state = Daemonish()
    metrics = Metrics()
    check = HealthCheck(scheduler_running=lambda: state.running, connection=lambda: store.db.conn)
    server = HealthServer(
        "127.0.0.1:0",
        health=check,
        metrics=metrics,
        before_scrape=lambda: metrics.set_outbox(store.outbox_depth()),
    )
    await server.start()
    yield server, state, metrics
    await server.close()


async def get(server: HealthServer, path: str, method: str = "GET") -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url) as client:
        return await client.request(method, path)


async def test_healthz_ok_while_scheduler_runs_and_database_writable(
    served: tuple[HealthServer, Daemonish, Metrics],
) -> None:
    server, _, _ = served
    r = await get(server, "/healthz")
    assert (r.status_code, r.text, r.headers["content-type"]) == (200, "ok\n", "text/plain; charset=utf-8")


async def test_healthz_503_when_the_scheduler_stopped(
    served: tuple[HealthServer, Daemonish, Metrics],
) -> None:
    server, state, _ = served
    state.running = False
    r = await get(server, "/healthz")
    assert (r.status_code, r.text) == (503, "the scheduler is not running\n")


async def test_healthz_503_when_the_database_is_read_only(tmp_path: Path) -> None:
    Store.open(tmp_path / "w.db").close()
    conn = sqlite3.connect(f"file:{tmp_path / 'w.db'}?mode=ro", uri=True, isolation_level=None)
    check = HealthCheck(scheduler_running=lambda: True, connection=lambda: conn)
    server = HealthServer("127.0.0.1:0", health=check, metrics=Metrics())
    await server.start()
    try:
        r = await get(server, "/healthz")
    finally:
        await server.close()
        conn.close()
    assert (r.status_code, r.text) == (
        503,
        "database is not writable: attempt to write a readonly database\n",
    )


async def test_metrics_exposition(served: tuple[HealthServer, Daemonish, Metrics], store: Store) -> None:
    server, _, metrics = served
    metrics.observe_poll(Report(feed="yonhap", status="ok", new=3, seen=17, elapsed=0.2))
    metrics.observe_poll(Report(feed="kcna", status="error", elapsed=1.5))
    metrics.observe_poll(Report(feed="kcna", status="skipped"))
    metrics.matched("summit-joint-statement")
    metrics.delivery("slack", ok=True, seconds=0.3)
    metrics.delivery("email", ok=False, seconds=2.0)
    store.create_alert(
        dedupe_key="k1",
        kind="open",
        severity="high",
        title="t",
        payload={},
        channels=["slack", "email"],
        now=datetime(2025, 9, 3, tzinfo=UTC),
    )
    r = await get(server, "/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=")
    lines = {line for line in r.text.splitlines() if not line.startswith("#")}
    assert {
        'watcher_polls_total{feed="yonhap",status="ok"} 1.0',
        'watcher_polls_total{feed="kcna",status="error"} 1.0',
        'watcher_polls_total{feed="kcna",status="skipped"} 1.0',
        'watcher_fetch_errors_total{feed="kcna"} 1.0',
        'watcher_items_total{state="new"} 3.0',
        'watcher_items_total{state="seen"} 17.0',
        'watcher_matches_total{rule="summit-joint-statement"} 1.0',
        'watcher_alerts_sent_total{channel="slack"} 1.0',
        'watcher_alerts_failed_total{channel="email"} 1.0',
        "watcher_outbox_depth 2.0",
        "watcher_poll_duration_seconds_count 2.0",
        'watcher_delivery_duration_seconds_count{channel="email"} 1.0',
    } <= lines


async def test_other_paths_and_methods(served: tuple[HealthServer, Daemonish, Metrics]) -> None:
    server, _, _ = served
    assert (await get(server, "/nope")).status_code == 404
    assert (await get(server, "/healthz", "POST")).status_code == 405
    head = await get(server, "/healthz", "HEAD")
    assert (head.status_code, head.content, head.headers["content-length"]) == (200, b"", "3")
    assert (await get(server, "/healthz?verbose=1")).status_code == 200


def test_two_metrics_objects_do_not_share_a_registry() -> None:
    a, b = Metrics(), Metrics()
    a.matched("r")
    assert [
        line for line in b.render().decode().splitlines() if line.startswith("watcher_matches_total")
    ] == []
    assert b'watcher_matches_total{rule="r"} 1.0' in a.render()


def test_probe_answers_are_reused_for_probe_every_seconds(tmp_path: Path) -> None:
    Store.open(tmp_path / "w.db").close()
    conn = sqlite3.connect(f"file:{tmp_path / 'w.db'}?mode=ro", uri=True, isolation_level=None)
    now = [100.0]
    used = {"conn": conn}
    rw = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    check = HealthCheck(scheduler_running=lambda: True, connection=lambda: used["conn"], clock=lambda: now[0])
    assert check().ok is False
    used["conn"] = rw
    assert check() == Health(True, "ok")  # a failed probe is retried at once: recovery shows
    used["conn"] = conn
    now[0] += 5
    assert check() == Health(True, "ok")  # a good answer holds for probe_every seconds
    now[0] += 10
    assert check().ok is False
    conn.close()
    rw.close()


def test_probe_skips_while_a_write_is_under_way(tmp_path: Path) -> None:
    s = Store.open(tmp_path / "w.db")
    with s.db.atomic():
        assert probe_database(s.db.conn) is None
        assert s.db.conn.in_transaction
    s.close()


@pytest.mark.parametrize(
    ("listen", "expected"),
    [
        ("127.0.0.1:9108", ("127.0.0.1", 9108)),
        ("[::1]:9108", ("::1", 9108)),
        ("localhost:0", ("localhost", 0)),
        ("9200", ("127.0.0.1", 9200)),
    ],
)
def test_parse_listen(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["127.0.0.1", ":80x", "host:70000", ""])
def test_parse_listen_refuses(listen: str) -> None:
    with pytest.raises(WatcherError):
        parse_listen(listen)
