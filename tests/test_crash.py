"""Crash safety: ``watcher run`` is killed with SIGKILL at random moments, 50 times, over a feed set that
changes between runs, and restarted each time. At the end the receivers must hold every alert that
should have been sent: nothing lost; a duplicate only where a kill fell between a send and its
bookkeeping (the delivery was left 'sending'), and then with the same alert key. The database passes
``PRAGMA integrity_check`` after every kill.

Kills land during start-up (migrations, recovery), fetches (feeds answer after a short delay), large
writes (a 1,500-item feed gets new items every round) and deliveries (the webhook answers slowly).
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from faultfeeds import item, rss
from feedserver import FeedServer
from receivers import SmtpSink, WebhookSink, smtp_sink, wait_for, webhook_sink

pytestmark = pytest.mark.slow

KILLS = 50
FEEDS = [f"f{i}" for i in range(8)]
CODES = [f"sig{n:03d}x" for n in range(150)]
CODE = re.compile(r"sig\d{3}x")
MAIL_KEY = re.compile(r"Alert key: (watcher-[\w-]+)")


def watchlist() -> str:
    rules = "".join(
        f"  - id: rule-{code}\n    title: Signal {code}\n    severity: high\n    all: [{code}]\n"
        for code in CODES
    )
    return "rules:\n" + rules


@dataclass
class World:
    """The feeds as the server serves them, and which feeds the config lists."""

    tmp: Path
    server: FeedServer
    rng: random.Random
    items: dict[str, list[str]] = field(default_factory=lambda: {f: [] for f in FEEDS})
    active: set[str] = field(default_factory=lambda: set(FEEDS[:5]))
    published: list[str] = field(default_factory=list)
    bulk_round: int = 0

    def publish(self, feed: str) -> None:
        code = CODES[len(self.published)]
        self.published.append(code)
        self.items[feed].append(item(f"{feed}-{code}", f"Kim watch {code} reported by {feed}"))
        self.serve(feed)

    def serve(self, feed: str) -> None:
        delay = self.rng.choice([0.0, 0.05, 0.2, 0.4])
        self.server.set(f"/{feed}.xml", rss(feed, self.items[feed]), delay=delay)

    def churn_bulk(self) -> None:
        """1,500 items, a third of them new each round: one large write transaction per poll."""
        self.bulk_round += 1
        start = self.bulk_round * 500
        entries = [
            item(f"bulk-{n}", f"Routine market report number {n}", age_hours=30)
            for n in range(start, start + 1500)
        ]
        self.server.set("/bulk.xml", rss("bulk", entries))

    def step(self) -> None:
        """Between runs: new signals on some listed feeds, now and then a feed joins or leaves."""
        for _ in range(self.rng.choice([0, 1, 1, 2, 3])):
            self.publish(self.rng.choice(sorted(self.active)))
        if self.rng.random() < 0.25:
            feed = self.rng.choice(FEEDS)
            if feed in self.active and len(self.active) > 2:
                self.active.discard(feed)
            else:
                self.active.add(feed)
        self.churn_bulk()

    def write_config(self, hook: WebhookSink, smtp: SmtpSink, feeds: set[str] | None = None) -> Path:
        listed = sorted(feeds if feeds is not None else self.active)
        lines = "".join(f'  - {{name: {f}, url: "{self.server.url(f"/{f}.xml")}"}}\n' for f in listed)
        lines += f'  - {{name: bulk, url: "{self.server.url("/bulk.xml")}"}}\n'
        text = (
            f"database: {self.tmp / 'watcher.db'}\nwatchlist: watchlist.yaml\nalert_max_age: 24h\n"
            "poll: {interval: 1s, jitter: 0s, parse_workers: 1}\n"
            "delivery: {retry_base: 200ms, retry_cap: 1s, timeout: 5s}\n"
            f'feeds:\n{lines}channels:\n  hook: {{url: "{hook.url()}"}}\n  mail: {{url: "{smtp.url()}"}}\n'
        )
        path = self.tmp / "watcher.yaml"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
        return path


@contextlib.contextmanager
def daemon(config: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``watcher run`` in its own process group; whatever is left of the group is killed afterwards
    (as systemd stops the rest of a unit whose main process died)."""
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "watcher", "run", "--config", str(config)],
            stderr=err,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def ready(log: Path, since: int) -> bool:
    return " running: " in log.read_bytes()[since:].decode("utf-8", "replace")


def inspect(database: Path) -> tuple[str, int]:
    """(integrity_check result, deliveries left 'sending') of the database a killed daemon left."""
    if not database.exists():
        return "ok", 0
    db = sqlite3.connect(database)
    try:
        (check,) = db.execute("PRAGMA integrity_check").fetchone()
        try:
            (sending,) = db.execute("SELECT count(*) FROM deliveries WHERE state = 'sending'").fetchone()
        except sqlite3.OperationalError:  # killed before the schema was created
            sending = 0
        return str(check), int(sending)
    finally:
        db.close()


@dataclass
class Received:
    """What one channel received: code → keys of each copy."""

    copies: dict[str, list[str]]

    @property
    def duplicates(self) -> int:
        return sum(len(keys) - 1 for keys in self.copies.values())


def received_hook(hook: WebhookSink) -> Received:
    out: dict[str, list[str]] = defaultdict(list)
    with hook.lock:
        for post, headers in zip(hook.posts, hook.headers, strict=True):
            for code in set(CODE.findall(str(post.get("title", "")))):
                out[code].append(headers.get("x-watcher-alert-key", ""))
    return Received(dict(out))


def received_mail(smtp: SmtpSink) -> Received:
    out: dict[str, list[str]] = defaultdict(list)
    for subject, body in zip(smtp.subjects(), smtp.bodies(), strict=True):
        key = MAIL_KEY.search(body)
        for code in set(CODE.findall(subject)):
            out[code].append(key.group(1) if key else "")
    return Received(dict(out))


def test_fifty_kills_lose_nothing_and_duplicate_only_with_the_same_key(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    rng = random.Random(int(os.environ.get("WATCHER_CRASH_SEED", "20250903")))
    (tmp_path / "watchlist.yaml").write_text(watchlist(), encoding="utf-8")
    database = tmp_path / "watcher.db"
    log = tmp_path / "daemon.log"
    world = World(tmp_path, feed_server, rng)
    for feed in FEEDS:
        world.serve(feed)
    moments: Counter[str] = Counter()
    left_sending = 0
    with smtp_sink() as smtp, webhook_sink() as hook:
        hook.delay = 0.15  # a send takes a while: kills land inside deliveries too
        for _ in range(KILLS):
            world.step()
            config = world.write_config(hook, smtp)
            since = log.stat().st_size if log.exists() else 0
            with daemon(config, log) as proc:
                if rng.random() < 0.15:
                    time.sleep(rng.uniform(0.05, 1.0))
                    moments["start-up"] += 1
                else:
                    assert wait_for(lambda s=since: ready(log, s) or proc.poll() is not None, timeout=20)
                    assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
                    time.sleep(rng.uniform(0.0, 2.5))
                    moments["running"] += 1
                assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
                proc.send_signal(signal.SIGKILL)
            check, sending = inspect(database)
            assert check == "ok", f"integrity_check after kill {sum(moments.values())}: {check}"
            left_sending += sending

        # the last run: every feed listed, no kill, until both channels hold every signal
        config = world.write_config(hook, smtp, feeds=set(FEEDS))
        expected = set(world.published)
        with daemon(config, log) as proc:
            complete = wait_for(
                lambda: (
                    set(received_hook(hook).copies) >= expected
                    and set(received_mail(smtp).copies) >= expected
                ),
                timeout=90,
            )
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
        assert complete, "not every alert arrived"
        # the daemon is gone; whatever it might still have sent has arrived
        webhook, mail = received_hook(hook), received_mail(smtp)
    assert inspect(database) == ("ok", 0)

    for channel in (webhook, mail):
        assert set(channel.copies) == expected  # nothing lost, nothing invented
        assert all(len(set(keys)) == 1 and keys[0].startswith("watcher-") for keys in channel.copies.values())
    # a duplicate needs a kill between a send and its bookkeeping
    assert webhook.duplicates + mail.duplicates <= left_sending
    print(
        f"\ncrash test: {KILLS} kills ({moments['start-up']} during start-up, {moments['running']} while running;"
        f" {left_sending} left a delivery 'sending'); {len(expected)} alerts expected per channel;"
        f" received {sum(map(len, webhook.copies.values()))} webhook posts and"
        f" {sum(map(len, mail.copies.values()))} emails; duplicates: webhook {webhook.duplicates},"
        f" email {mail.duplicates}, each with its alert's key"
    )
