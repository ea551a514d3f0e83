"""``watcher demo``: the Beijing parade week replayed through the real daemon, in under a minute.

A DemoFarm (a real HTTP server on 127.0.0.1) serves the week's real headlines from nine outlets as the
replay clock advances; the real Daemon polls it every second into a temporary database, matches the
embedded watch list and prints each alert on the console channel as it fires.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from watcher.config import embedded_defaults_dir, load_config
from watcher.daemon import Daemon
from watcher.demofarm import DemoFarm, demo_config_text
from watcher.store import Store


@dataclass
class DemoReport:
    items: int = 0
    matches: int = 0
    alerts: int = 0
    delivered: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    not_modified: int = 0


async def run_demo(
    *,
    step: timedelta = timedelta(hours=2),
    pace: float = 0.35,
    watchlist: Path | None = None,
    database: Path | None = None,
    say: Callable[[str], None] = print,
) -> DemoReport:
    """Replay the week: every ``pace`` seconds the farm's clock moves ``step`` forward."""
    watchlist = watchlist or embedded_defaults_dir() / "watchlist.yaml"
    with tempfile.TemporaryDirectory(prefix="watcher-demo-") as tmp, DemoFarm() as farm:
        db = database or Path(tmp) / "demo.db"
        config_path = Path(tmp) / "watcher.yaml"
        config_path.write_text(
            demo_config_text(farm.base_url, str(db), str(watchlist.resolve())), encoding="utf-8"
        )
        loaded = load_config(config_path)
        daemon = Daemon(loaded, config_path=config_path)
        say(
            f"Replaying 1–7 September 2025: {len(farm.slugs)} feeds served on {farm.base_url}, "
            f"polled every second by the watcher daemon; alerts print below as they fire.\n"
        )
        task = asyncio.create_task(daemon.run())
        day = None
        try:
            for now in farm.week.ticks(step):
                if task.done():
                    break
                if now.date() != day and now < farm.week.end:
                    day = now.date()
                    say(f"\n──── {now:%A %d %B %Y} ────")
                farm.advance_to(now)
                await asyncio.sleep(pace)
            await asyncio.sleep(2.5)  # the last polls and deliveries
        finally:
            daemon.stop()
            await task
        report = _report(db)
        stats = farm.stats()
        report.requests, report.not_modified = stats.requests, stats.not_modified
        return report


def _report(db: Path) -> DemoReport:
    with Store.open(db) as store:
        counts = store.counts()
        rows = store.db.execute(
            "SELECT rule_id, count(*) FROM alerts GROUP BY rule_id ORDER BY 2 DESC"
        ).fetchall()
        sent = store.db.execute("SELECT count(*) FROM deliveries WHERE state = 'sent'").fetchone()[0]
    return DemoReport(
        items=counts["items"],
        matches=counts["matches"],
        alerts=counts["alerts"],
        delivered=int(sent),
        by_rule={str(r[0]): int(r[1]) for r in rows},
    )


def render_report(report: DemoReport) -> str:
    lines = [
        "",
        f"Done: {report.items} items stored from {report.requests} feed requests "
        f"({report.not_modified} answered 304 Not Modified), {report.matches} rule matches, "
        f"{report.alerts} alerts, {report.delivered} delivered.",
    ]
    if report.by_rule:
        lines.append("Alerts per rule: " + ", ".join(f"{k} {v}" for k, v in report.by_rule.items()))
    lines.append(
        "Edit the watch list (config/watchlist.yaml) and run `watcher demo --watchlist FILE` to compare."
    )
    return "\n".join(lines)
