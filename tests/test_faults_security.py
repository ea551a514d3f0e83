"""Secrets and exposure, end to end: channel secrets never reach logs, error messages, ``watcher check``,
``watcher status``/``alerts``/``feeds`` or the alerts themselves; the health listener binds loopback by
default; feed text cannot put markup, links or mentions into an email, a webhook or a Slack message;
the database and the daemon's state files are owner-only whatever the umask.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from apprise.plugins.slack import NotifySlack
from faultfeeds import item, rss
from feedserver import FeedServer
from pydantic import SecretStr
from receivers import SmtpSink, WebhookSink, free_port, smtp_sink, wait_for, webhook_sink

from watcher.config import Config, load_config
from watcher.render import render
from watcher.store import Store

pytestmark = pytest.mark.slow

SECRETS = {
    "HOOK_TOKEN": "hooktoken-5ecr3t-0001",
    "SMTP_PASSWORD": "smtppass-5ecr3t-0002",
    "DEAD_TOKEN": "deadtoken-5ecr3t-0003",
}
FEED_TOKEN = "feedtoken-5ecr3t-0004"
WATCHLIST = "rules:\n  - {id: parade, title: Parade, severity: high, any: [parade]}\n"
EVIL = (
    "<!channel> @here @everyone parade <script>alert(1)</script> <b>bold</b> [click](https://evil.example/x)"
    " <https://evil.example/y|click> evil.example/z www.evil.example ![img](https://evil.example/i.png) `code`"
)


def run(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "watcher", *args], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=60, check=False)  # fmt: skip


@pytest.fixture
def rig(
    tmp_path: Path, feed_server: FeedServer
) -> Iterator[tuple[Path, dict[str, str], SmtpSink, WebhookSink]]:
    with smtp_sink() as smtp, webhook_sink() as hook:
        state = tmp_path / "state"  # created by the daemon
        (tmp_path / "watchlist.yaml").write_text(WATCHLIST, encoding="utf-8")
        feed_server.set(
            "/wire.xml", rss("Wire", [item("evil", EVIL, link="https://news.example/evil?utm_source=x")])
        )
        feed_server.redirect("/private", f"/private?token={FEED_TOKEN}")  # a loop: its URL lands in the error
        dead = free_port()
        (tmp_path / "watcher.yaml").write_text(
            f"database: {state / 'watcher.db'}\nwatchlist: watchlist.yaml\nalert_max_age: 24h\n"
            "poll: {interval: 1s, jitter: 0s, parse_workers: 0}\n"
            "delivery: {retry_base: 1s, timeout: 5s}\n"
            "http: {enabled: true, listen: '0'}\n"
            "feeds:\n"
            f"  - {{name: wire, url: '{feed_server.url('/wire.xml')}'}}\n"
            f"  - {{name: private, url: '{feed_server.url('/private')}?token={FEED_TOKEN}'}}\n"
            "channels:\n"
            f"  hook: {{url: 'json://127.0.0.1:{hook.port}/hook/${{HOOK_TOKEN}}?format=markdown'}}\n"
            f"  mail: {{url: '{smtp.url()}'}}\n"
            # the test SMTP server offers no AUTH: this channel fails, through apprise's error path
            f"  mailauth: {{url: 'mailto://watcher:${{SMTP_PASSWORD}}@127.0.0.1:{smtp.port}"
            "?from=watcher@example.org&to=analyst@example.org&mode=insecure'}\n"
            f"  dead: {{url: 'json://127.0.0.1:{dead}/hook?token=${{DEAD_TOKEN}}'}}\n",
            encoding="utf-8",
        )
        env = {**os.environ, **SECRETS, "PYTHONUNBUFFERED": "1"}
        yield tmp_path, env, smtp, hook


def listening(pid: int) -> list[tuple[str, int]]:
    """(IPv4 address, port) of the TCP sockets process ``pid`` listens on."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        target = os.readlink(fd) if fd.is_symlink() else ""
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    out = []
    for line in Path(f"/proc/{pid}/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
            addr, port = fields[1].split(":")
            octets = [str(int(addr[i : i + 2], 16)) for i in (6, 4, 2, 0)]
            out.append((".".join(octets), int(port, 16)))
    return out


def test_secrets_stay_secret_listener_is_loopback_feed_text_is_inert_files_are_owner_only(
    rig: tuple[Path, dict[str, str], SmtpSink, WebhookSink],
) -> None:
    tmp, env, smtp, hook = rig
    config = tmp / "watcher.yaml"
    log = tmp / "daemon.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "watcher", "run", "--config", str(config), "--log-level", "debug"],
            stderr=err, stdout=subprocess.DEVNULL, env=env, cwd=tmp,
            preexec_fn=lambda: os.umask(0o022),  # a permissive umask: the files must not follow it
        )  # fmt: skip
    try:
        assert wait_for(lambda: len(hook.posts) == 1 and len(smtp.messages) == 1, 30), log.read_text()
        db = tmp / "state" / "watcher.db"
        assert wait_for(lambda: _dead_failed(db), 20), log.read_text()
        state = tmp / "state"
        running_modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [state, *state.iterdir()]}
        # the health listener: loopback only
        sockets = listening(proc.pid)
        assert len(sockets) == 1 and sockets[0][0] == "127.0.0.1", sockets
        health = httpx.get(f"http://127.0.0.1:{sockets[0][1]}/healthz", timeout=5)
        assert health.status_code == 200
        metrics = httpx.get(f"http://127.0.0.1:{sockets[0][1]}/metrics", timeout=5).text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert Config().http.listen == "127.0.0.1:9108"  # the default, when http is enabled without listen

    # what a user sees: logs, check, status, feeds, alerts; and what the receivers got
    shown = {
        "daemon log": log.read_text(errors="replace"),
        "metrics": metrics,
        **{
            f"watcher {' '.join(cmd)}": (r.stdout + r.stderr)
            for cmd in (["check"], ["status"], ["feeds"], ["alerts"])
            if (r := run([*cmd, "--config", str(config)], env, tmp))
        },
        "database": "\n".join(_dump(tmp / "state" / "watcher.db")),
        "webhook": json.dumps(hook.posts) + json.dumps(hook.headers),
        "email": "\n".join(m.as_string() for m in smtp.messages),
    }
    leaks = {where: name for where, text in shown.items() for name, value in
             [*SECRETS.items(), ("FEED_TOKEN", FEED_TOKEN)] if value in text}  # fmt: skip
    assert leaks == {}
    # the errors themselves are shown, without the secrets
    assert "mailauth: pending, 1 attempt" in shown["watcher alerts"]
    assert 'Connection error while submitting email to "127.0.0.1"' in shown["watcher alerts"]
    assert "redirect loop" in shown["watcher feeds"]

    # feed text arrives as text: no markup, no links but the item's own, no mentions
    html = smtp.messages[0].get_body(preferencelist=("html",)).get_content()
    assert "<script" not in html and "<b>bold" not in html and "&lt;script&gt;" in html
    hrefs = sorted(set(re.findall(r'href="([^"]+)"', html)))
    assert hrefs == ["https://news.example/evil"]
    webhook_text = str(hook.posts[0]["message"])
    html_active = ("<!channel>", "@here", "@everyone", "](https://evil", "<https://evil", "<script>")
    for active in html_active:  # in HTML, Markdown is inert text; tags and mentions are not
        assert active not in html, active
    for active in (*html_active, "![img]"):  # a Markdown webhook: no link, image, tag or mention
        assert active not in webhook_text, active
    title, mrkdwn = _render_for_slack(config, env)
    assert re.findall(r"<[^>]*>", mrkdwn) == ["<https://news.example/evil|<br>"] or mrkdwn.count("<") == 1, (
        mrkdwn
    )
    assert "<https://news.example/evil|" in mrkdwn  # the item's own link is the one Slack entity
    for mention in ("@here", "@everyone", "@channel"):  # apprise escapes < > & in a Slack title itself
        assert mention not in title and mention not in mrkdwn, (mention, title, mrkdwn)

    # owner-only files and directory, although the umask allowed group and world reading
    assert running_modes == {
        "state": 0o700,
        "watcher.db": 0o600,
        "watcher.db-wal": 0o600,
        "watcher.db-shm": 0o600,
        "watcher.db.lock": 0o600,
    }
    after = {p.name: stat.S_IMODE(p.stat().st_mode) for p in [state, *state.iterdir()]}
    # after the reads by `watcher status` and friends (the WAL files may stay or go): still owner-only
    assert after == {name: 0o700 if name == "state" else 0o600 for name in after} and "watcher.db" in after


def _dead_failed(database: Path) -> bool:
    """Both failing channels have failed at least once (their errors are on record)."""
    if not database.exists():
        return False
    with sqlite3.connect(database) as db:
        rows = db.execute(
            "SELECT count(*) FROM deliveries WHERE channel IN ('dead', 'mailauth') AND last_error IS NOT NULL"
        ).fetchone()
    return bool(rows and rows[0] == 2)


def _dump(database: Path) -> Iterator[str]:
    """Every row of every table, but the feed URLs (the user's config, kept as written)."""
    with sqlite3.connect(database) as db:
        for (table,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            cursor = db.execute(f"SELECT * FROM {table}")
            names = [d[0] for d in cursor.description]
            for row in cursor:
                yield f"{table}: {[v for k, v in zip(names, row, strict=True) if (table, k) != ('feeds', 'url')]}"


def _render_for_slack(config: Path, env: dict[str, str]) -> tuple[str, str]:
    """The stored alert as a Slack message: its title, and its body in the mrkdwn apprise sends
    (there is no Slack to send it to here)."""
    loaded = load_config(config, environ=env)
    slack = loaded.config.channels["hook"].model_copy(update={"url": SecretStr("slack://T000/B000/xyz")})
    with Store.open(loaded.database) as store:
        (alert,) = store.recent_alerts()
    delivery = SimpleNamespace(kind=alert["kind"], payload=alert["payload"], dedupe_key=alert["dedupe_key"])
    title, body, _ = render(delivery, slack)
    return title, NotifySlack._commonmark_to_slack(body)
