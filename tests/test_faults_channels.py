"""Channels that misbehave: a webhook that is down, slow, or answers 500 before 200; an SMTP server that
refuses before it accepts; apprise raising. Alerts wait in the outbox and go out once the channel is
back, each exactly once; the other channels are not held up.

Real receivers on loopback (tests/receivers.py), the real apprise sends, ``poll_once`` or the daemon.
"""

from __future__ import annotations

import asyncio
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from apprise.decorators import notify as apprise_notify
from faultfeeds import item, rss
from feedserver import FeedServer
from receivers import SmtpSink, free_port, smtp_sink, wait_for, webhook_sink

from watcher.config import ChannelConfig, LoadedConfig, load_config
from watcher.daemon import open_runtime, poll_once
from watcher.deliver import Deliverer, SendResult, apprise_send
from watcher.store import Delivery, Store

pytestmark = pytest.mark.slow

WATCHLIST = """\
rules:
  - id: parade
    title: Beijing parade
    severity: high
    all: [parade]
  - id: quake
    title: Earthquake
    severity: high
    all: [earthquake]
"""
PARADE = item("p1", "Xi, Putin and Kim at the Beijing parade")
QUAKE = item("q1", "Earthquake hits Afghanistan")
KEY = re.compile(r"Alert key: (watcher-[\w-]+)")


@dataclass
class Rig:
    tmp: Path
    server: FeedServer
    smtp: SmtpSink
    channels: dict[str, str] = field(default_factory=dict)
    delivery: str = "retry_base: 200ms, retry_cap: 400ms, timeout: 3s"

    def config(self) -> Path:
        (self.tmp / "watchlist.yaml").write_text(WATCHLIST, encoding="utf-8")
        channels = "".join(f'  {name}: {{url: "{url}"}}\n' for name, url in self.channels.items())
        path = self.tmp / "watcher.yaml"
        path.write_text(
            f"database: {self.tmp / 'watcher.db'}\nwatchlist: watchlist.yaml\nalert_max_age: 24h\n"
            f"poll: {{interval: 1s, jitter: 0s, parse_workers: 0}}\ndelivery: {{{self.delivery}}}\n"
            f'feeds:\n  - {{name: wire, url: "{self.server.url("/wire.xml")}", publisher: Wire}}\n'
            f"channels:\n{channels}",
            encoding="utf-8",
        )
        return path

    def publish(self, *items: str) -> None:
        self.server.set("/wire.xml", rss("Wire", list(items)))

    def once(self) -> tuple[int, int]:
        """One ``watcher poll --once``: (alerts written, messages delivered)."""
        report = asyncio.run(poll_once(load_config(self.config())))
        return sum(p.alerts for p in report.polls), report.delivery.sent

    def deliveries(self) -> dict[tuple[str, str], tuple[str, int]]:
        """(alert title, channel) → (state, attempts)."""
        with sqlite3.connect(self.tmp / "watcher.db") as db:
            return {
                (title, channel): (state, attempts)
                for title, channel, state, attempts in db.execute(
                    "SELECT a.title, d.channel, d.state, d.attempts FROM deliveries d"
                    " JOIN alerts a ON a.id = d.alert_id"
                )
            }

    def until(self, done: Callable[[], bool], *, passes: int = 20) -> None:
        """Run ``poll --once`` passes (what a cron job or the daemon would do) until ``done()``."""
        for _ in range(passes):
            self.once()
            if done():
                return
            time.sleep(0.25)
        raise AssertionError("the outbox did not drain")


@pytest.fixture
def rig(tmp_path: Path, feed_server: FeedServer) -> Iterator[Rig]:
    with smtp_sink() as smtp:
        yield Rig(tmp_path, feed_server, smtp, {"mail": smtp.url()})


def mail_keys(smtp: SmtpSink) -> list[str]:
    return [m.group(1) for body in smtp.bodies() if (m := KEY.search(body))]


def test_a_webhook_that_is_down_gets_every_alert_in_order_once_it_is_back(rig: Rig) -> None:
    port = free_port()  # nothing listens here yet
    rig.channels["hook"] = f"json://127.0.0.1:{port}/hook"
    rig.publish(PARADE)
    assert rig.once() == (1, 1)  # mail went; the webhook is down
    rig.publish(PARADE, QUAKE)
    time.sleep(0.3)
    assert rig.once() == (1, 1)  # the second alert's mail is not held up by the dead webhook
    parade, quake = "Xi, Putin and Kim at the Beijing parade", "Earthquake hits Afghanistan"
    waiting = rig.deliveries()
    assert waiting[parade, "hook"][0] == "pending" and waiting[parade, "hook"][1] >= 2
    assert waiting[quake, "hook"] == ("pending", 0)  # in order: it waits behind the first one
    with webhook_sink(port) as hook:
        rig.until(lambda: len(hook.posts) == 2)
        assert [re.sub(r".*: ", "", str(p["title"])) for p in hook.posts] == [parade, quake]
        assert hook.keys() == mail_keys(rig.smtp)  # same alerts, same keys, same order
        assert len(set(hook.keys())) == 2
    assert len(rig.smtp.messages) == 2
    assert {state for state, _ in rig.deliveries().values()} == {"sent"}


def test_a_webhook_answering_500_then_200_gets_the_alert_exactly_once(rig: Rig) -> None:
    with webhook_sink() as hook:
        hook.fail_next = 2
        rig.channels["hook"] = hook.url()
        rig.publish(PARADE)
        rig.until(lambda: len(hook.posts) == 1)
        time.sleep(0.5)
        rig.once()  # one more pass: nothing is sent again
        assert (len(hook.posts), len(rig.smtp.messages)) == (1, 1)
        assert rig.deliveries() == {
            ("Xi, Putin and Kim at the Beijing parade", "hook"): ("sent", 3),
            ("Xi, Putin and Kim at the Beijing parade", "mail"): ("sent", 1),
        }


def test_an_smtp_server_refusing_then_accepting_gets_the_alert_exactly_once(rig: Rig) -> None:
    with webhook_sink() as hook:
        rig.channels["hook"] = hook.url()
        rig.smtp.refuse = True
        rig.publish(PARADE)
        assert rig.once() == (1, 1)  # the webhook got it; mail is refused (451)
        rig.once()
        assert rig.smtp.messages == [] and len(hook.posts) == 1
        with sqlite3.connect(rig.tmp / "watcher.db") as db:
            (error,) = db.execute("SELECT last_error FROM deliveries WHERE channel = 'mail'").fetchone()
        assert error == 'Sending email to "analyst@example.org" failed.'  # apprise keeps the 451 to itself
        rig.smtp.refuse = False
        rig.until(lambda: len(rig.smtp.messages) == 1)
        rig.once()
        assert (len(rig.smtp.messages), len(hook.posts)) == (1, 1)
        assert mail_keys(rig.smtp) == hook.keys()


# -- apprise raising ------------------------------------------------------------------------------

_raises_left = [0]
_received: list[str] = []


@apprise_notify(on="watcherboom", name="watcher test: raises, then works")  # type: ignore[misc]
def _boom(body: str, title: str, notify_type: str, *args: Any, **kwargs: Any) -> bool:
    """A custom apprise service (as users write them) that raises until ``_raises_left`` runs out."""
    if _raises_left[0] > 0:
        _raises_left[0] -= 1
        raise RuntimeError("plugin exploded")
    _received.append(title)
    return True


def test_an_apprise_plugin_that_raises_keeps_the_alert_until_it_works(rig: Rig) -> None:
    _received.clear()
    _raises_left[0] = 2
    rig.channels["boom"] = "watcherboom://"
    rig.publish(PARADE)
    rig.until(lambda: len(_received) == 1)
    rig.once()
    assert (_received, len(rig.smtp.messages)) == (
        ["[HIGH] Beijing parade: Xi, Putin and Kim at the Beijing parade"],
        1,
    )
    assert rig.deliveries()["Xi, Putin and Kim at the Beijing parade", "boom"] == ("sent", 3)  # raised twice


class Explodes:
    """A send function that raises (as a plugin's or a renderer's bug would) the first ``n`` times,
    then sends through apprise for real."""

    def __init__(self, n: int) -> None:
        self.left = n
        self.lock = threading.Lock()

    async def __call__(self, name: str, channel: ChannelConfig, delivery: Delivery) -> SendResult:
        with self.lock:
            if self.left > 0:
                self.left -= 1
                raise RuntimeError("exploded while sending")
        return await apprise_send(name, channel, delivery)


def test_a_send_that_raises_leaves_the_alert_in_the_outbox_and_other_channels_unharmed(rig: Rig) -> None:
    with webhook_sink() as hook:
        rig.channels["hook"] = hook.url()
        rig.publish(PARADE)
        loaded = load_config(rig.config())
        rig.once()  # the first alert goes to both channels; the second one meets a send that raises
        rig.publish(PARADE, QUAKE)
        with Store.open(loaded.database) as store:
            asyncio.run(_poll_only(loaded))
            explodes = Explodes(1)
            deliverer = Deliverer(store, loaded.config.channels, loaded.config.delivery, send=explodes)

            async def passes() -> None:
                for _ in range(10):
                    await deliverer.run_once()
                    if store.outbox_depth() == 0:
                        return
                    await asyncio.sleep(0.25)

            asyncio.run(passes())
            assert store.outbox_depth() == 0
        assert (len(hook.posts), len(rig.smtp.messages)) == (2, 2)
        assert len(set(hook.keys())) == 2 and sorted(hook.keys()) == sorted(mail_keys(rig.smtp))


async def _poll_only(loaded: LoadedConfig) -> None:
    async with open_runtime(loaded) as rt:
        await rt.pipeline.poll_all()


# -- a slow webhook under the daemon ------------------------------------------------------------


def test_a_slow_webhook_does_not_hold_up_mail_in_the_daemon(rig: Rig) -> None:
    """A webhook that takes 30 s to answer (the send gives up after 3 s): mail for a later alert
    still goes out while the webhook's first send is in flight; once the webhook is quick again it
    gets both alerts."""
    with webhook_sink() as hook:
        hook.delay = 30.0
        rig.channels["hook"] = hook.url()
        rig.delivery = "retry_base: 2s, retry_cap: 2s, timeout: 3s"  # below apprise's own 4 s read timeout
        rig.publish(PARADE)
        config = rig.config()
        log = rig.tmp / "daemon.log"
        with log.open("w") as err:
            proc = subprocess.Popen(
                [sys.executable, "-m", "watcher", "run", "--config", str(config)], stderr=err
            )
        try:
            assert wait_for(lambda: len(rig.smtp.messages) == 1, timeout=20), log.read_text()
            rig.publish(PARADE, QUAKE)
            assert wait_for(lambda: len(rig.smtp.messages) == 2, timeout=20), log.read_text()
            # when the second mail arrived, the webhook's first send was still in flight
            hook_state = _delivery_state(rig.tmp / "watcher.db", "hook")
            hook.delay = 0.0
            assert wait_for(lambda: len(hook.posts) == 2, timeout=30), log.read_text()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert hook_state == [("sending", 1), ("pending", 0)]
    assert hook.keys() == mail_keys(rig.smtp)


def _delivery_state(database: Path, channel: str) -> list[tuple[str, int]]:
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        return list(
            db.execute(
                "SELECT state, attempts FROM deliveries WHERE channel = ? ORDER BY alert_id", [channel]
            )
        )
    finally:
        db.close()
