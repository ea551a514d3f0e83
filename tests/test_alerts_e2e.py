"""Stories, corroboration and delivery end to end on loopback: a real feed server with one feed per
outlet, a real webhook receiver and a real SMTP server (aiosmtpd), the real pipeline and outbox.

Where a test needs the clock to move (a digest hour, a retry an hour later, the end of quiet hours) it
gives the real ``Deliverer`` a clock; everything else runs as ``watcher poll --once`` does.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest
from feedserver import FeedServer
from receivers import SmtpSink, WebhookSink, smtp_sink, wait_for, webhook_sink

from watcher.config import LoadedConfig, load_config
from watcher.daemon import poll_once
from watcher.deliver import Deliverer, DeliveryReport
from watcher.store import Store

NOW = datetime.now(UTC).replace(microsecond=0)

WATCHLIST = """\
entities:
  xi: {aliases: [Xi Jinping, Xi, 习近平, 習近平, 시진핑, Си Цзиньпин]}
  putin: {aliases: [Vladimir Putin, Putin, 普京, プーチン, 푸틴, Путин]}
  kim: {aliases: [Kim Jong Un, Kim Jong-un, Kim, 金正恩, 김정은, Ким Чен Ын]}
rules:
  - id: trio-together
    title: Xi, Putin and Kim appear together
    severity: high
    min_sources: MIN_SOURCES
    all: [{entity: xi}, {entity: putin}, {entity: kim}]
"""

# (feed, publisher, headline): thirteen mastheads, eleven independent publishers. Yonhap has two feeds;
# the Straits Times carries CNA's wire copy word for word.
OUTLETS = [
    ("guardian", "The Guardian", "Xi Jinping appears with Vladimir Putin and Kim Jong-un at China military parade"),
    ("japantoday", "Japan Today", "China's Xi hosts massive military parade with Putin, Kim"),
    ("aljazeera", "Al Jazeera", "China's Xi oversees massive military parade with Putin, Kim in attendance"),
    ("yonhap-en", "Yonhap", "Xi, Putin, Kim stand together on Tiananmen rostrum"),
    ("yonhap-ko", "Yonhap", "시진핑·푸틴·김정은, 톈안먼 망루에 나란히"),
    ("tass", "TASS", "Си Цзиньпин, Путин и Ким Чен Ын на параде в Пекине"),
    ("xinhua", "Xinhua", "习近平同普京、金正恩一同出席纪念大会"),
    ("cna", "CNA", "Kim Jong Un, Putin join Xi for China's biggest ever military parade"),
    ("straits", "The Straits Times", "Kim Jong Un, Putin join Xi for China's biggest ever military parade"),
    ("bbc", "BBC News", "Putin and Kim join Xi at Beijing parade as China shows its might"),
    ("nbc", "NBC News", "Leaders Xi, Putin and Kim share the stage at China's parade"),
    ("nyt", "The New York Times", "Xi Parades Firepower With Putin and Kim at His Side"),
    ("kyodo", "Kyodo", "習近平氏、プーチン氏と金正恩氏と並び軍事パレード"),
]  # fmt: skip


def rss(name: str, titles: list[str]) -> bytes:
    """A feed of ``titles``; each outlet publishes a minute after the one before it in OUTLETS."""
    rank = [n for n, _, _ in OUTLETS].index(name)
    items = "".join(
        f"<item><title>{escape(t)}</title><link>https://{name}.example/{i}</link><guid>{name}-{i}</guid>"
        f"<pubDate>{format_datetime(NOW - timedelta(minutes=30 - rank - i))}</pubDate></item>"
        for i, t in enumerate(titles)
    )
    return (
        f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>{name}</title>"
        f"<link>https://{name}.example/</link><description>d</description>{items}</channel></rss>"
    ).encode()


def write_config(tmp: Path, server: FeedServer, channels: str, *, min_sources: int = 1) -> Path:
    (tmp / "watchlist.yaml").write_text(WATCHLIST.replace("MIN_SOURCES", str(min_sources)), encoding="utf-8")
    feeds = "\n".join(
        f'  - {{name: {n}, url: "{server.url(f"/{n}.xml")}", publisher: "{p}"}}' for n, p, _ in OUTLETS
    )
    for name, _, _ in OUTLETS:
        server.set(f"/{name}.xml", body=rss(name, []))
    path = tmp / "watcher.yaml"
    path.write_text(
        f"database: {tmp / 'watcher.db'}\nwatchlist: watchlist.yaml\n"
        "poll: {interval: 60s, jitter: 0s, parse_workers: 0}\n"
        "delivery: {retry_base: 30s, retry_cap: 10m}\n"
        f"feeds:\n{feeds}\nchannels:\n{channels}\n",
        encoding="utf-8",
    )
    return path


def publish(server: FeedServer, names: list[str]) -> None:
    """The named outlets now carry their headline."""
    for name, _, title in OUTLETS:
        if name in names:
            server.set(f"/{name}.xml", body=rss(name, [title]))


def once(config: Path) -> tuple[int, int, int]:
    """One `watcher poll --once`: (items matched, alerts written, messages sent)."""
    report = asyncio.run(poll_once(load_config(config)))
    return sum(p.matches for p in report.polls), sum(p.alerts for p in report.polls), report.delivery.sent


def deliver_at(loaded: LoadedConfig, when: datetime) -> DeliveryReport:
    """One delivery pass of the real Deliverer, as if the clock read ``when``."""
    with Store.open(loaded.database) as store:
        deliverer = Deliverer(store, loaded.config.channels, loaded.config.delivery, clock=lambda: when)
        return asyncio.run(deliverer.run_once())


@pytest.fixture
def hook() -> Iterator[WebhookSink]:
    with webhook_sink() as sink:
        yield sink


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    with smtp_sink() as sink:
        yield sink


def posted(hook: WebhookSink) -> list[tuple[str, str]]:
    with hook.lock:
        return [(str(p.get("title", "")), str(p.get("message", ""))) for p in hook.posts]


@pytest.mark.slow
def test_many_outlets_one_story_one_alert_then_updates(
    tmp_path: Path, feed_server: FeedServer, hook: WebhookSink
) -> None:
    config = write_config(tmp_path, feed_server, f'  hook: {{url: "{hook.url()}"}}')
    rounds = [
        ["guardian"],
        ["japantoday", "aljazeera", "yonhap-en", "yonhap-ko"],
        ["tass", "xinhua", "cna", "straits", "bbc", "nbc", "nyt", "kyodo"],
    ]
    results = []
    for names in rounds:
        publish(feed_server, names)
        results.append(once(config))
    assert results == [(1, 1, 1), (4, 1, 1), (8, 1, 1)]  # (matched, alerts, sent) per poll
    matched, alerts = sum(r[0] for r in results), sum(r[2] for r in results)
    assert (matched, alerts) == (13, 3)
    titles = [t for t, _ in posted(hook)]
    story = "Xi Jinping appears with Vladimir Putin and Kim Jong-un at China military parade"
    assert titles == [
        f"[HIGH] Xi, Putin and Kim appear together: {story}",
        f"[HIGH] UPDATE Xi, Putin and Kim appear together: 3 sources: {story}",
        f"[HIGH] UPDATE Xi, Putin and Kim appear together: 10 sources: {story}",
    ]
    last = posted(hook)[-1][1]
    assert "UPDATE: 10 independent sources now report this story (threshold 10)." in last
    assert "Sources (10): " in last
    with Store.open(load_config(config).database) as store:
        ((items, count, sources),) = store.db.execute("SELECT item_count, source_count, sources FROM stories")
    # thirteen items, eleven publishers: Yonhap's two feeds count once, the Straits Times' wire copy not at all
    assert (items, count) == (13, 11)
    assert set(json.loads(sources)) == {p for _, p, _ in OUTLETS} - {"The Straits Times"}
    keys = hook.keys()
    assert len(set(keys)) == 3 and all(k in m for k, (_, m) in zip(keys, posted(hook), strict=True))
    # polling again changes nothing
    assert once(config) == (0, 0, 0)


@pytest.mark.slow
def test_min_sources_holds_the_alert_until_the_third_publisher(
    tmp_path: Path, feed_server: FeedServer, hook: WebhookSink
) -> None:
    config = write_config(tmp_path, feed_server, f'  hook: {{url: "{hook.url()}"}}', min_sources=3)
    publish(feed_server, ["yonhap-en", "yonhap-ko"])  # one publisher, two feeds
    assert once(config) == (2, 0, 0)
    publish(feed_server, ["cna", "straits"])  # a second publisher, and its wire copy
    assert once(config) == (2, 0, 0)
    with Store.open(load_config(config).database) as store:
        assert store.db.execute("SELECT source_count, held FROM stories").fetchall() == [
            (2, "2 of 3 publishers")
        ]
    publish(feed_server, ["guardian"])
    assert once(config) == (1, 1, 1)
    ((title, message),) = posted(hook)
    assert title.startswith("[HIGH] Xi, Putin and Kim appear together: ")
    assert "Sources (3): The Guardian, Yonhap, CNA" in message  # in order of publication
    assert "Same wire copy also under: The Straits Times (from CNA)" in message
    assert message.count("https://") == 5  # every item of the story so far, with its own link


@pytest.mark.slow
def test_a_digest_to_a_real_smtp_server_holds_the_period_stories(
    tmp_path: Path, feed_server: FeedServer, hook: WebhookSink, smtp: SmtpSink
) -> None:
    channels = (
        f'  hook: {{url: "{hook.url()}", severity: critical}}\n'
        f'  mail: {{url: "{smtp.url()}", mode: digest, digest: {{every: 1h}}}}'
    )
    config = write_config(tmp_path, feed_server, channels)
    publish(feed_server, ["guardian", "japantoday", "aljazeera", "cna"])
    assert once(config) == (4, 2, 0)  # an open and an update, both held for the digest
    assert (len(smtp.messages), len(hook.posts)) == (0, 0)
    loaded = load_config(config)
    next_hour = NOW.replace(minute=0, second=0) + timedelta(hours=1)
    report = deliver_at(loaded, next_hour + timedelta(seconds=5))
    assert report.sent == 1
    assert wait_for(lambda: len(smtp.messages) == 1)
    (message,) = smtp.messages
    assert str(message["Subject"]).startswith("watcher digest: 1 story (")
    assert message["X-Watcher-Alert-Key"].startswith("watcher-digest-")
    text = smtp.bodies()[0]
    assert "Xi, Putin and Kim appear together (trio-together, high)" in text
    assert "4 sources (" in text  # the story as it stands at digest time, not at its last alert
    for name, publisher in (
        ("guardian", "The Guardian"),
        ("japantoday", "Japan Today"),
        ("aljazeera", "Al Jazeera"),
        ("cna", "CNA"),
    ):
        assert f"({publisher})\r\nhttps://{name}.example/0" in text
    html = message.get_body(preferencelist=("html",))
    assert html is not None and html.get_content().count('<a href="https://') == 4
    # the next hour is empty: nothing is sent
    assert deliver_at(loaded, next_hour + timedelta(hours=1, seconds=5)).sent == 0
    assert len(smtp.messages) == 1 and len(hook.posts) == 0


@pytest.mark.slow
def test_a_webhook_failing_for_a_while_gets_every_alert_once_in_order(
    tmp_path: Path, feed_server: FeedServer, hook: WebhookSink
) -> None:
    config = write_config(tmp_path, feed_server, f'  hook: {{url: "{hook.url()}"}}')
    hook.status = 500
    rounds = (
        ["guardian"],
        ["japantoday", "aljazeera"],
        ["tass", "xinhua", "cna", "bbc", "nbc", "nyt", "kyodo"],
    )
    for names in rounds:
        publish(feed_server, names)
        once(config)  # each poll writes an alert; the first poll tries the webhook (500), then it backs off
    loaded = load_config(config)
    with Store.open(loaded.database) as store:
        expected = [r[0] for r in store.db.execute("SELECT dedupe_key FROM alerts ORDER BY id")]
    assert len(expected) == 3 and hook.posts == []
    # the channel stays down: each pass tries the oldest alert once, backing off 30s, 60s, ... up to 10 min
    when, delays = NOW, []
    for _ in range(6):
        with Store.open(loaded.database) as store:
            due = store.next_delivery("hook")
            assert due is not None
            when = max(when, datetime.fromisoformat(due.next_attempt_at))
        assert deliver_at(loaded, when).failed == 1
        with Store.open(loaded.database) as store:
            nxt = store.next_delivery("hook")
            assert nxt is not None
            delays.append((datetime.fromisoformat(nxt.next_attempt_at) - when).total_seconds())
    assert delays == [60.0, 120.0, 240.0, 480.0, 600.0, 600.0]  # after attempts 2 to 7
    hook.status = 200
    assert deliver_at(loaded, when + timedelta(hours=1)).sent == 3
    assert hook.keys() == expected  # every alert once, oldest first
    assert deliver_at(loaded, when + timedelta(hours=2)).sent == 0


@pytest.mark.slow
def test_quiet_hours_hold_an_alert_and_let_a_critical_one_through(
    tmp_path: Path, feed_server: FeedServer, hook: WebhookSink
) -> None:
    start = (NOW - timedelta(hours=1)).strftime("%H:%M")
    end = (NOW + timedelta(hours=1)).strftime("%H:%M")
    channels = f'  hook: {{url: "{hook.url()}", quiet_hours: {{start: "{start}", end: "{end}", min_severity: critical}}}}'
    config = write_config(tmp_path, feed_server, channels)
    critical = tmp_path / "watchlist.yaml"
    critical.write_text(
        critical.read_text()
        + "  - id: kim-alone\n    title: Kim seen\n    severity: critical\n    all: [{entity: kim}]\n"
    )
    publish(feed_server, ["guardian"])  # opens a high trio alert and a critical kim alert
    assert once(config) == (2, 2, 1)
    assert [t.split(":")[0] for t, _ in posted(hook)] == ["[CRITICAL] Kim seen"]
    loaded = load_config(config)
    quiet_end = datetime.fromisoformat(NOW.strftime("%Y-%m-%dT") + end + ":00+00:00")
    if quiet_end < NOW:
        quiet_end += timedelta(days=1)
    assert deliver_at(loaded, quiet_end - timedelta(minutes=1)).sent == 0
    assert deliver_at(loaded, quiet_end + timedelta(seconds=1)).sent == 1
    assert [t.split(":")[0] for t, _ in posted(hook)] == [
        "[CRITICAL] Kim seen",
        "[HIGH] Xi, Putin and Kim appear together",
    ]


@pytest.mark.slow
def test_a_rate_limit_spreads_alerts_and_drops_none(
    tmp_path: Path, feed_server: FeedServer, hook: WebhookSink
) -> None:
    config = write_config(
        tmp_path, feed_server, f'  hook: {{url: "{hook.url()}", rate_limit: {{count: 2, per: 1h}}}}'
    )
    for names in (
        ["guardian"],
        ["japantoday", "aljazeera"],
        ["tass", "xinhua", "cna", "bbc", "nbc", "nyt", "kyodo"],
    ):
        publish(feed_server, names)
        once(config)
    assert len(hook.posts) == 2  # the open and the 3-source update; the 10-source update waits
    loaded = load_config(config)
    assert deliver_at(loaded, NOW + timedelta(minutes=30)).sent == 0
    assert deliver_at(loaded, NOW + timedelta(minutes=61)).sent == 1
    assert len(set(hook.keys())) == 3


class _SlowAckSink:
    """A webhook receiver that records a post, then takes ``ack_delay`` seconds to answer it."""

    def __init__(self, ack_delay: float) -> None:
        self.keys: list[str] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with sink.lock:
                    sink.keys.append(self.headers.get("X-Watcher-Alert-Key", ""))
                time.sleep(ack_delay)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.slow
def test_a_kill_between_sent_and_recorded_resends_with_the_same_key(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    import os
    import signal
    import subprocess
    import sys

    sink = _SlowAckSink(ack_delay=30)
    try:
        config = write_config(tmp_path, feed_server, f'  hook: {{url: "{sink.url()}"}}')
        publish(feed_server, ["guardian"])
        proc = subprocess.Popen(
            [sys.executable, "-m", "watcher", "run", "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            assert wait_for(lambda: len(sink.keys) == 1, timeout=30), "the daemon sent nothing"
            os.kill(proc.pid, signal.SIGKILL)  # the receiver has the message; the daemon never heard back
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
        loaded = load_config(config)
        with Store.open(loaded.database) as store:
            rows = store.db.execute(
                "SELECT a.dedupe_key, d.state FROM deliveries d JOIN alerts a ON a.id = d.alert_id"
            )
            assert rows.fetchall() == [(sink.keys[0], "sending")]
        sink_fast = _SlowAckSink(ack_delay=0)
        try:
            # the restarted daemon (same database) finds the delivery in flight and sends it again
            config.write_text(config.read_text().replace(sink.url(), sink_fast.url()))
            assert once(config) == (0, 0, 1)
            assert sink_fast.keys == sink.keys  # the same key: the receiver can drop the duplicate
        finally:
            sink_fast.close()
        with Store.open(loaded.database) as store:
            assert store.db.execute("SELECT state, attempts FROM deliveries").fetchall() == [("sent", 2)]
    finally:
        sink.close()


def test_email_carries_the_key_and_the_story_thread(tmp_path: Path, smtp: SmtpSink) -> None:
    from watcher.config import ChannelConfig, DeliveryConfig

    with Store.open(tmp_path / "w.db") as store:
        for kind in ("open", "update"):
            store.create_alert(dedupe_key=f"watcher-{kind}", kind=kind, severity="high", title="Kim in Beijing",
                               payload={"thread": "watcher-story-7", "update": {"threshold": 3, "sources": 3}},
                               channels=["mail"], now=NOW, rule_id="kim", story_id=7)  # fmt: skip
        deliverer = Deliverer(
            store, {"mail": ChannelConfig(url=smtp.url())}, DeliveryConfig(), clock=lambda: NOW
        )
        assert asyncio.run(deliverer.run_once()).sent == 2
    assert wait_for(lambda: len(smtp.messages) == 2)
    headers = [(m["X-Watcher-Alert-Key"], m["References"]) for m in smtp.messages]
    assert headers == [
        ("watcher-open", "<watcher-story-7@watcher.invalid>"),
        ("watcher-update", "<watcher-story-7@watcher.invalid>"),
    ]


def test_google_chat_updates_name_the_story_thread() -> None:
    from watcher.config import ChannelConfig
    from watcher.deliver import target_url
    from watcher.store import Delivery

    delivery = Delivery(id=1, alert_id=1, channel="chat", attempts=0, dedupe_key="watcher-abc", kind="update",
                        severity="high", rule_id="kim", title="t", payload={"thread": "watcher-story-7"},
                        created_at="", next_attempt_at="")  # fmt: skip
    chat = ChannelConfig(url="gchat://workspace/key/token")
    assert target_url(chat, delivery) == "gchat://workspace/key/token?thread=watcher-story-7"
    hook = ChannelConfig(url="json://127.0.0.1:9/hook?a=1")
    assert target_url(hook, delivery) == "json://127.0.0.1:9/hook?a=1&+X-Watcher-Alert-Key=watcher-abc"



def test_a_bad_schedule_is_refused_when_the_config_loads(tmp_path: Path) -> None:
    """Quiet hours and digest times are checked with positions by `watcher check`, before they can run."""
    from watcher.config import load_config
    from watcher.errors import ConfigError

    cfg = tmp_path / "watcher.yaml"
    cfg.write_text(
        "channels:\n  hook:\n    url: json://127.0.0.1:9/\n"
        "    quiet_hours: {start: '22h', end: '07:00', timezone: Mars/Olympus}\n"
        "  mail:\n    url: json://127.0.0.1:9/\n    mode: digest\n    digest: {every: 1h, at: '07:00'}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as info:
        load_config(cfg, environ={})
    got = [(p.line, p.message.split(":")[0]) for p in info.value.problems]
    assert got == [(4, "channels.hook.quiet_hours.start"), (4, "channels.hook.quiet_hours.timezone"), (8, "channels.mail.digest")]
