"""End to end on loopback: a real feed server whose content changes between polls, a real SMTP server
(apprise mailto://) and a real webhook receiver (apprise json://), the real daemon code.

Each expected alert arrives exactly once on each channel; unchanged feeds are not re-parsed; a restart
sends nothing again.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from feedserver import FeedServer
from receivers import SmtpSink, WebhookSink, smtp_sink, wait_for, webhook_sink

from watcher.config import load_config
from watcher.daemon import poll_once
from watcher.store import Store

NOW = datetime.now(UTC).replace(microsecond=0)

WATCHLIST = """\
entities:
  xi: {aliases: [Xi Jinping, Xi, 习近平]}
  putin: {aliases: [Vladimir Putin, Putin, Путин]}
  kim: {aliases: [Kim Jong Un, Kim Jong-un, Kim, 김정은]}
rules:
  - id: trio-together
    title: Xi, Putin and Kim appear together
    description: The three leaders side by side.
    severity: high
    all: [{entity: xi}, {entity: putin}, {entity: kim}]
  - id: bilateral-meeting
    title: Two of the three leaders meet
    description: Xi-Putin, Xi-Kim or Putin-Kim talks.
    severity: medium
    at_least: {n: 2, of: [{entity: xi}, {entity: putin}, {entity: kim}]}
    all: [{any: [talks, meets, meeting, summit]}]
    none: [{entity: xi}] # keep the two rules apart in this test: Xi meetings are not counted here
"""


@dataclass(frozen=True)
class Entry:
    guid: str
    title: str
    age_hours: float = 1.0
    summary: str = ""


def rss(title: str, entries: list[Entry]) -> bytes:
    items = "".join(
        f"<item><title>{escape(e.title)}</title><link>https://news.example/{e.guid}?utm_source=rss</link>"
        f"<guid isPermaLink='false'>{e.guid}</guid>"
        f"<pubDate>{format_datetime(NOW - timedelta(hours=e.age_hours))}</pubDate>"
        f"<description>{escape(e.summary)}</description></item>"
        for e in entries
    )
    return (
        f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>{title}</title>"
        f"<link>https://news.example/</link><description>d</description>{items}</channel></rss>"
    ).encode()


def atom(title: str, entries: list[Entry]) -> bytes:
    items = "".join(
        f"<entry><title>{escape(e.title)}</title><id>urn:x:{e.guid}</id>"
        f"<link href='https://paper.example/{e.guid}'/>"
        f"<updated>{(NOW - timedelta(hours=e.age_hours)).isoformat()}</updated>"
        f"<summary>{escape(e.summary)}</summary></entry>"
        for e in entries
    )
    return (
        f"<?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom'><title>{title}</title>"
        f"<id>urn:x:feed</id><updated>{NOW.isoformat()}</updated>{items}</feed>"
    ).encode()


@pytest.fixture
def rig(tmp_path: Path, feed_server: FeedServer) -> Iterator[tuple[Path, FeedServer, SmtpSink, WebhookSink]]:
    with smtp_sink() as smtp, webhook_sink() as hook:
        (tmp_path / "watchlist.yaml").write_text(WATCHLIST, encoding="utf-8")
        (tmp_path / "watcher.yaml").write_text(
            f"""\
database: {tmp_path / "watcher.db"}
watchlist: watchlist.yaml
alert_max_age: 24h
poll: {{interval: 1s, jitter: 0s}}  # parsing in a worker process, as by default
delivery: {{retry_base: 1s}}
feeds:
  - {{name: wire, url: "{feed_server.url("/wire.xml")}", publisher: Wire}}
  - {{name: paper, url: "{feed_server.url("/paper.atom")}", publisher: Paper}}
channels:
  mail: {{url: "{smtp.url()}"}}
  hook: {{url: "{hook.url()}"}}
""",
            encoding="utf-8",
        )
        yield tmp_path / "watcher.yaml", feed_server, smtp, hook


def once(config: Path) -> tuple[int, int]:
    report = asyncio.run(poll_once(load_config(config)))
    return sum(p.alerts for p in report.polls), report.delivery.sent


TRIO = Entry("trio", "Xi, Putin and Kim Jong Un stand together at Beijing parade")
OLD_TRIO = Entry("old-trio", "Xi Jinping, Putin and Kim pictured together in 2019", age_hours=72)
QUAKE = Entry("quake", "Earthquake hits Afghanistan")
TALKS = Entry(
    "talks", "Putin and Kim Jong-un hold talks in Beijing", summary="The two leaders met for 2 hours."
)


@pytest.mark.slow
def test_each_alert_arrives_exactly_once_on_each_channel(
    rig: tuple[Path, FeedServer, SmtpSink, WebhookSink],
) -> None:
    config, server, smtp, hook = rig
    server.set("/wire.xml", body=rss("Wire", [TRIO, QUAKE, OLD_TRIO]))
    server.set("/paper.atom", body=atom("Paper", [QUAKE]), content_type="application/atom+xml")

    # poll 1: one fresh match; the three-day-old one is stored, not alerted
    assert once(config) == (1, 2)
    assert wait_for(lambda: len(smtp.messages) == 1 and len(hook.posts) == 1)

    # poll 2: wire unchanged (ETag → 304, nothing parsed); paper gets a new matching item
    server.set("/paper.atom", body=atom("Paper", [TALKS, QUAKE]), content_type="application/atom+xml")
    assert once(config) == (1, 2)
    assert server.not_modified("/wire.xml") == 1

    # poll 3: the wire re-publishes the trio item (same guid, new date), re-posts it under a new guid, and
    # edits its title; the paper's body is byte-identical but served without validators (hash: not parsed)
    server.set(
        "/wire.xml",
        body=rss(
            "Wire",
            [
                Entry("trio", "Xi, Putin and Kim Jong Un stand together at Beijing military parade", 0.5),
                Entry("trio-repost", "Xi, Putin and Kim Jong Un stand together at Beijing parade", 0.2),
                QUAKE,
            ],
        ),
    )
    server.set(
        "/paper.atom",
        body=atom("Paper", [TALKS, QUAKE]),
        content_type="application/atom+xml",
        etag=False,
        last_modified=None,
    )
    assert once(config) == (0, 0)
    # a restart (a new process's worth of state: store, fetcher, deliverer) sends nothing again
    assert once(config) == (0, 0)

    assert wait_for(lambda: len(smtp.messages) == 2 and len(hook.posts) == 2, timeout=2)
    assert sorted(smtp.subjects()) == sorted(
        [
            "[HIGH] Xi, Putin and Kim appear together: Xi, Putin and Kim Jong Un stand together at Beijing parade",
            "[MEDIUM] Two of the three leaders meet: Putin and Kim Jong-un hold talks in Beijing",
        ]
    )
    mail = "\n".join(smtp.bodies())
    for expected in (
        "(trio-together)",
        "https://news.example/trio",  # the tracking parameter is gone
        "Wire",
        "(bilateral-meeting)",
        "https://paper.example/talks",
        "Paper",
    ):
        assert expected in mail
    assert "utm_source" not in mail
    # every webhook post carries its alert's dedupe key as a header and in the text; no key twice
    keys = hook.keys()
    assert len(set(keys)) == 2 and all(k.startswith("watcher-") for k in keys)
    assert all(k in m for k, m in zip(keys, hook.messages(), strict=True))

    with Store.open(Path(load_config(config).database)) as store:
        feeds = {f["name"]: f for f in store.feeds()}
        assert feeds["paper"]["last_status"] == "unchanged"
        assert store.counts()["items"] == 6  # trio, quake, old-trio, talks, paper quake, trio-repost
        assert store.counts()["alerts"] == 2
        assert store.outbox_depth() == 0


@pytest.mark.slow
def test_a_channel_that_is_down_gets_the_alert_once_it_is_back(
    rig: tuple[Path, FeedServer, SmtpSink, WebhookSink],
) -> None:
    config, server, smtp, hook = rig
    server.set("/wire.xml", body=rss("Wire", [TRIO]))
    server.set("/paper.atom", body=atom("Paper", []), content_type="application/atom+xml")
    hook.status = 503
    assert once(config) == (1, 1)  # mail went, the webhook refused
    assert len(hook.posts) == 0
    hook.status = 200
    with Store.open(Path(load_config(config).database)) as store:
        (alert,) = store.recent_alerts()
        states = {d["channel"]: (d["state"], d["attempts"]) for d in alert["deliveries"]}
        assert states == {"hook": ("pending", 1), "mail": ("sent", 1)}
        assert "503" in str(alert["deliveries"][0]["last_error"])
        store.retry_alert(alert["id"], now=datetime.now(UTC))  # what `watcher alerts retry ID` does
    assert once(config) == (0, 1)
    assert (len(smtp.messages), len(hook.posts)) == (1, 1)


@pytest.mark.slow
def test_watcher_run_polls_on_schedule_and_stops_cleanly_on_sigterm(
    rig: tuple[Path, FeedServer, SmtpSink, WebhookSink],
) -> None:
    config, server, smtp, hook = rig
    server.set("/wire.xml", body=rss("Wire", [QUAKE]))
    server.set("/paper.atom", body=atom("Paper", []), content_type="application/atom+xml")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "watcher", "run", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert wait_for(lambda: server.hits("/wire.xml") >= 2, timeout=20), "the daemon did not poll"
        server.set("/wire.xml", body=rss("Wire", [TRIO, QUAKE]))
        assert wait_for(lambda: len(hook.posts) == 1 and len(smtp.messages) == 1, timeout=20)
        polls_before = server.hits("/wire.xml")
        assert wait_for(lambda: server.hits("/wire.xml") >= polls_before + 2, timeout=20)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped" in err
    assert (len(hook.posts), len(smtp.messages)) == (1, 1)
    # restarting on the same database sends nothing again
    assert once(config) == (0, 0)
    assert (len(hook.posts), len(smtp.messages)) == (1, 1)


@pytest.mark.slow
def test_an_offline_machine_gets_one_plain_hint(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from watcher.daemon import Daemon

    feeds = "".join(
        f"  - {{name: f{i}, url: 'http://feed{i}.invalid/rss', interval: 60s}}\n" for i in range(3)
    )
    cfg = tmp_path / "watcher.yaml"
    cfg.write_text(
        f"database: {tmp_path / 'w.db'}\npoll: {{jitter: 0s, parse_workers: 0}}\nfeeds:\n{feeds}",
        encoding="utf-8",
    )
    (tmp_path / "watchlist.yaml").write_text(WATCHLIST, encoding="utf-8")
    daemon = Daemon(load_config(cfg))

    async def run() -> None:
        task = asyncio.create_task(daemon.run())
        for _ in range(200):
            await asyncio.sleep(0.05)
            if any("cannot be resolved" in r.getMessage() for r in caplog.records):
                break
        daemon.stop()
        await task

    asyncio.run(run())
    hints = [r.getMessage() for r in caplog.records if "cannot be resolved" in r.getMessage()]
    assert hints == [
        "3 of 3 feeds cannot be resolved: is this machine offline? watcher keeps retrying each feed with"
        " backoff; meanwhile `watcher demo` shows it working without a network"
    ]
