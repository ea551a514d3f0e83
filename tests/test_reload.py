"""What a reload reports as changed, and the file watcher that triggers it (real files, real inotify)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest

from watcher.atomicwrite import write_atomic
from watcher.config import Config, load_config
from watcher.reload import Changes, diff, watch_files
from watcher.rules import Watchlist, load_watchlist

CONFIG = """\
poll: {interval: 10m, jitter: 30s}
feeds:
  - {name: yonhap-en, url: "https://en.yna.co.kr/RSS/news.xml", interval: 5m}
  - {name: kcna-watch, url: "https://kcnawatch.org/feed/"}
  - {name: nk-news, url: "https://www.nknews.org/feed/"}
channels:
  console: {url: "console://"}
"""

WATCHLIST = """\
entities:
  kim: {aliases: [Kim Jong Un]}
rules:
  - {id: joint-statement, title: Joint statement, all: [{entity: kim}, joint statement]}
  - {id: parade, title: Parade, any: [military parade]}
  - {id: treaty, title: Treaty, any: [treaty]}
"""


def load(tmp_path: Path, config: str, watchlist: str) -> tuple[Config, Watchlist]:
    (tmp_path / "c.yaml").write_text(config)
    (tmp_path / "w.yaml").write_text(watchlist)
    return load_config(tmp_path / "c.yaml", environ={}).config, load_watchlist(tmp_path / "w.yaml")


def changes(tmp_path: Path, config: str, watchlist: str) -> Changes:
    old = load(tmp_path, CONFIG, WATCHLIST)
    new = load(tmp_path, config, watchlist)
    return diff(old[0], old[1], new[0], new[1])


def test_nothing_changed(tmp_path: Path) -> None:
    c = changes(tmp_path, CONFIG, WATCHLIST + "# a comment\n")
    assert c.empty
    assert c.lines() == ["no changes"]


def test_rules_added_removed_changed_toggled(tmp_path: Path) -> None:
    watchlist = (
        WATCHLIST.replace("military parade]", "military parade, march past]")
        .replace("  - {id: treaty, title: Treaty, any: [treaty]}\n", "")
        .replace(
            "all: [{entity: kim}, joint statement]}", "all: [{entity: kim}, joint statement], enabled: false}"
        )
        + "  - {id: kim-visit, title: Kim travels, all: [{entity: kim}, visit]}\n"
    )
    c = changes(tmp_path, CONFIG, watchlist)
    assert c == Changes(
        rules_added=("kim-visit",),
        rules_removed=("treaty",),
        rules_changed=("parade",),
        rules_disabled=("joint-statement",),
    )
    assert c.lines() == [
        "rules added: kim-visit",
        "rules removed: treaty",
        "rules changed: parade",
        "rules disabled: joint-statement",
    ]


def test_an_entity_edit_changes_the_rules_that_use_it(tmp_path: Path) -> None:
    c = changes(tmp_path, CONFIG, WATCHLIST.replace("[Kim Jong Un]", "[Kim Jong Un, 김정은]"))
    assert c == Changes(rules_changed=("joint-statement",))


def test_feeds_channels_and_settings(tmp_path: Path) -> None:
    config = (
        CONFIG.replace("jitter: 30s", "jitter: 30s, concurrency: 5")
        .replace("interval: 5m}", "interval: 2m, tags: [korea]}")
        .replace('  - {name: nk-news, url: "https://www.nknews.org/feed/"}\n', "")
        .replace("channels:", '  - {name: 38north, url: "https://www.38north.org/feed/"}\nchannels:')
        + '  ops: {url: "json://127.0.0.1:9/"}\nalert_max_age: 2h\n'
    )
    c = changes(tmp_path, config, WATCHLIST)
    assert c == Changes(
        feeds_added=("38north",),
        feeds_removed=("nk-news",),
        feeds_changed={"yonhap-en": ("interval", "tags")},
        feeds_rescheduled=("yonhap-en",),
        channels_added=("ops",),
        settings_changed=("alert_max_age",),
        restart_needed=("poll.concurrency",),
    )
    assert c.lines() == [
        "feeds added: 38north",
        "feeds removed: nk-news",
        "feeds changed: yonhap-en (interval, tags)",
        "channels added: ops",
        "settings changed: alert_max_age",
        "needs a restart to take effect: poll.concurrency",
    ]


def test_a_new_default_interval_reschedules_the_feeds_without_their_own(tmp_path: Path) -> None:
    c = changes(tmp_path, CONFIG.replace("interval: 10m", "interval: 15m"), WATCHLIST)
    assert (c.feeds_rescheduled, c.settings_changed) == (("kcna-watch", "nk-news"), ("poll.interval",))


def test_a_channel_secret_change_is_named_but_not_shown(tmp_path: Path) -> None:
    c = changes(tmp_path, CONFIG.replace("console://", "json://127.0.0.1:1/?token=new"), WATCHLIST)
    assert c.lines() == ["channels changed: console"]


async def _until(event: asyncio.Event, poke: Callable[[], object]) -> None:
    """Repeat ``poke()`` until ``event`` is set (10 s at most): the watcher may start after the first write."""
    async with asyncio.timeout(10):
        while not event.is_set():
            poke()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), 0.3)


@pytest.mark.anyio
async def test_watch_files_sees_saves_and_atomic_replaces_only_of_its_files(tmp_path: Path) -> None:
    watched = tmp_path / "watchlist.yaml"
    other = tmp_path / "notes.txt"
    watched.write_text("a: 1\n")
    seen: list[set[Path]] = []
    got = asyncio.Event()

    async def on_change(paths: set[Path]) -> None:
        seen.append(paths)
        got.set()

    stop = asyncio.Event()
    task = asyncio.create_task(
        watch_files(lambda: [watched], on_change, stop=stop, step_ms=50, debounce_ms=400)
    )
    await _until(got, lambda: watched.write_text("a: 2\n"))
    assert seen[-1] == {watched}

    got.clear()
    seen.clear()
    other.write_text("not watched\n")
    await asyncio.sleep(0.5)
    assert seen == []

    await _until(got, lambda: write_atomic(watched, "a: 3\n"))  # temp file + rename: a new inode
    assert seen[-1] == {watched}
    got.clear()
    await _until(got, lambda: write_atomic(watched, "a: 4\n"))  # and the watch survives it
    assert seen[-1] == {watched}

    stop.set()
    await asyncio.wait_for(task, 5)


@pytest.mark.anyio
async def test_watch_files_follows_a_growing_set_of_files(tmp_path: Path) -> None:
    main, extra = tmp_path / "w.yaml", tmp_path / "sub" / "extra.yaml"
    extra.parent.mkdir()
    main.write_text("x\n")
    extra.write_text("y\n")
    files = [main]
    got = asyncio.Event()
    seen: list[set[Path]] = []

    async def on_change(paths: set[Path]) -> None:
        seen.append(paths)
        files[:] = [main, extra]  # the reload found a new include
        got.set()

    stop = asyncio.Event()
    task = asyncio.create_task(
        watch_files(lambda: list(files), on_change, stop=stop, step_ms=50, debounce_ms=400)
    )
    await _until(got, lambda: main.write_text("x2\n"))
    got.clear()
    await _until(got, lambda: extra.write_text("y2\n"))
    assert seen[-1] == {extra}
    stop.set()
    await asyncio.wait_for(task, 5)
