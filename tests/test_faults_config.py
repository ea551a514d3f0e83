"""Bad config while running: each bad save is refused with ``file:line:column: what``, the daemon keeps
polling and alerting on the last good version, and a good save afterwards is taken.

The loader-level cases the watch-list and config tests do not cover come first (YAML alias bombs,
nesting, re-used anchors, a regex that backtracks in a way the loader cannot see, 5 MB of rules); then
one daemon meets every kind of bad save in turn.
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from faultfeeds import item, rss
from feedserver import FeedServer
from receivers import WebhookSink, wait_for, webhook_sink

from watcher.config import load_config
from watcher.errors import ConfigError
from watcher.match import REGEX_TIMEOUT, compile_watchlist
from watcher.models import Item
from watcher.rules import load_watchlist
from watcher.yamlsrc import MAX_DEPTH

GOOD = (
    "entities:\n  kim: {aliases: [Kim Jong Un, Kim]}\nrules:\n"
    "  - {id: parade, title: Parade, severity: high, all: [{entity: kim}, parade]}\n"
    # one rule per probe, so that each probe item is an alert of its own (not part of one story)
    + "".join(f"  - {{id: probe-{n}, title: Probe {n}, any: [probe{n}x]}}\n" for n in range(10))
)
NEXT = len(GOOD.splitlines()) + 1  # the line a rule appended to GOOD is on


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path) -> None:
    os.chdir(tmp_path)  # problems show paths relative to the working directory


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_watchlist(path)
    return [str(p) for p in info.value.problems]


def alias_bomb(levels: int) -> str:
    """Nested anchors in a rule's conditions: nine times more values per level."""
    lines = [
        "rules:",
        "  - id: r0",
        "    title: t",
        '    any: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
    ]
    for i in range(1, levels + 1):
        refs = ", ".join([f"*l{i - 1}"] * 9)
        lines += [f"  - id: r{i}", "    title: t", f"    any: &l{i} [{refs}]"]
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_at_once_with_its_position(tmp_path: Path) -> None:
    path = tmp_path / "watchlist.yaml"
    path.write_text(alias_bomb(7), encoding="utf-8")  # 9⁸ ≈ 43 million values once expanded
    started = time.monotonic()
    assert problems(path) == [
        "watchlist.yaml:22:10: aliases expand this file to 54,481,030 values (written: 43); "
        "an anchor used this way is refused"
    ]
    assert time.monotonic() - started < 5  # refused before anything walks the expanded tree


def test_anchors_that_repeat_a_little_are_fine_and_may_be_redefined(tmp_path: Path) -> None:
    path = tmp_path / "watchlist.yaml"
    path.write_text(
        "rules:\n"
        "  - {id: a, title: A, tags: &t [asia, summit], any: [parade]}\n"
        "  - {id: b, title: B, tags: *t, any: [talks]}\n"
        "  - {id: c, title: C, tags: &t [europe], any: [visit]}\n"  # the same anchor name again
        "  - {id: d, title: D, tags: *t, any: [treaty]}\n",
        encoding="utf-8",
    )
    assert [(r.id, r.tags) for r in load_watchlist(path).rules] == [
        ("a", ["asia", "summit"]),
        ("b", ["asia", "summit"]),
        ("c", ["europe"]),
        ("d", ["europe"]),
    ]


def test_nesting_past_the_limit_is_a_positioned_problem_not_a_recursion_error(tmp_path: Path) -> None:
    path = tmp_path / "watchlist.yaml"
    path.write_text("rules:\n  - id: deep\n    title: t\n    any: " + "[" * 300 + "x" + "]" * 300 + "\n")
    assert problems(path) == [f"watchlist.yaml:4:{10 + MAX_DEPTH - 3}: nested deeper than {MAX_DEPTH} levels"]


def test_a_missing_watch_list_or_config_is_named() -> None:
    assert problems(Path("gone.yaml")) == ["gone.yaml:0:0: cannot read file: No such file or directory"]
    with pytest.raises(ConfigError) as info:
        load_config(Path("watcher.yaml"))
    assert [str(p) for p in info.value.problems] == [
        "watcher.yaml:0:0: cannot read file: No such file or directory"
    ]


def test_a_regex_the_loader_cannot_judge_is_bounded_when_matching(tmp_path: Path) -> None:
    """``(a|aa)+$`` has no nested quantifier (the load-time check passes it) yet backtracks
    exponentially on 'aaaa…b'; matching stops it at the time limit and the other rules still match."""
    path = tmp_path / "watchlist.yaml"
    path.write_text(
        "rules:\n"
        "  - {id: nested, title: Nested, any: [{regex: '(a+)+$'}]}\n"
        "  - {id: alternation, title: Alternation, any: [{regex: '(a|aa)+$'}]}\n"
        "  - {id: parade, title: Parade, any: [parade]}\n",
        encoding="utf-8",
    )
    assert problems(path) == [
        "watchlist.yaml:2:47: regex '(a+)+$' nests a quantifier inside a quantified group (like (a+)+),"
        " which can take exponential time; rewrite it without that"
    ]
    path.write_text(
        path.read_text().replace("  - {id: nested, title: Nested, any: [{regex: '(a+)+$'}]}\n", "")
    )
    matcher = compile_watchlist(load_watchlist(path))
    evil = Item(feed="f", key="k", link="", title="parade " + "a" * 60 + "!", summary="a" * 60 + "!",
                published=datetime.now(UTC))  # fmt: skip
    started = time.monotonic()
    assert [m.rule_id for m in matcher.match(evil)] == ["parade"]
    # two fields at REGEX_TIMEOUT each; unbounded, 2⁶⁰ steps would take longer than anyone waits
    assert time.monotonic() - started < 20 * REGEX_TIMEOUT


def big_watchlist(target: int) -> str:
    lines = ["entities:"]
    lines += [f"  e{i}: {{aliases: [Person Number{i} Alpha, Number{i} Alpha]}}" for i in range(1000)]
    lines.append("rules:")
    i = 0
    size = sum(len(line) + 1 for line in lines)
    while size < target:
        rule = (
            f"  - id: rule-{i}\n    title: Rule number {i}\n    severity: medium\n"
            f"    all: [{{entity: e{i % 1000}}}, {{any: [summit {i}, talks {i}, parade]}}]"
        )
        lines.append(rule)
        size += len(rule) + 1
        i += 1
    return "\n".join(lines) + "\n"


# -- the running daemon ---------------------------------------------------------------------------


@pytest.fixture
def daemon_rig(tmp_path: Path, feed_server: FeedServer) -> Iterator[tuple[Path, FeedServer, WebhookSink]]:
    with webhook_sink() as hook:
        (tmp_path / "watchlist.yaml").write_text(GOOD, encoding="utf-8")
        feed_server.set("/wire.xml", rss("Wire", [item("p1", "Kim Jong Un reviews the parade")]))
        config = tmp_path / "watcher.yaml"
        config.write_text(
            f"database: {tmp_path / 'watcher.db'}\nwatchlist: watchlist.yaml\n"
            "poll: {interval: 1s, jitter: 0s, parse_workers: 0}\n"
            f"feeds:\n  - {{name: wire, url: '{feed_server.url('/wire.xml')}'}}\n"
            f"channels:\n  hook: {{url: '{hook.url()}'}}\n",
            encoding="utf-8",
        )
        yield config, feed_server, hook


def save(path: Path, text: str) -> None:
    """An editor's save: write a temporary file, then rename it over the original."""
    tmp = path.with_name(path.name + ".swp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


@pytest.mark.slow
def test_the_daemon_refuses_each_bad_save_says_where_and_runs_on(
    daemon_rig: tuple[Path, FeedServer, WebhookSink],
) -> None:
    config, server, hook = daemon_rig
    watchlist = config.parent / "watchlist.yaml"
    good_config = config.read_text()
    log = config.parent / "daemon.log"

    def logged(pattern: str, since: int) -> bool:
        return re.search(pattern, log.read_text(errors="replace")[since:], re.MULTILINE) is not None

    def refused(problem: str, timeout: float = 30) -> None:
        since = len(log.read_text(errors="replace"))
        assert wait_for(lambda: logged(r"reload refused \(\d+ problems?\)", since), timeout), log.read_text()[
            since:
        ]
        assert logged(r"ERROR +watcher\.service: " + problem, since), log.read_text()[since:]

    bad_saves: list[tuple[str, Path, str, str]] = [
        ("invalid YAML", watchlist, GOOD + "  - {id: r, title: R, any: [unclosed\n",
         rf"watchlist\.yaml:{NEXT + 1}:\d+: invalid YAML: .*"),
        ("regex that does not compile", watchlist, GOOD + "  - {id: r, title: R, any: [{regex: '(unclosed'}]}\n",
         rf"watchlist\.yaml:{NEXT}:\d+: invalid regex '\(unclosed': missing \)"),
        ("catastrophic regex", watchlist, GOOD + "  - {id: r, title: R, any: [{regex: '(a+)+$'}]}\n",
         rf"watchlist\.yaml:{NEXT}:\d+: regex '\(a\+\)\+\$' nests a quantifier inside a quantified group"),
        ("unknown entity", watchlist, GOOD + "  - {id: r, title: R, all: [{entity: kim_jong_un}]}\n",
         rf"watchlist\.yaml:{NEXT}:\d+: unknown entity 'kim_jong_un'"),
        ("YAML alias bomb", watchlist, alias_bomb(8), r"watchlist\.yaml:\d+:\d+: aliases expand this file"),
        ("bad value in the config", config, good_config.replace("interval: 1s", "interval: 0s"),
         r"watcher\.yaml:3:\d+: .*an interval must be at least 1s"),
        ("config file gone", config, "", r"watcher\.yaml:0:0: cannot read file: No such file or directory"),
    ]  # fmt: skip

    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "watcher", "run", "--config", str(config)], stderr=err)
    try:
        assert wait_for(lambda: len(hook.posts) == 1, 20), log.read_text()
        polls: list[int] = []
        for n, (what, path, text, problem) in enumerate(bad_saves, start=2):
            if what == "config file gone":
                path.unlink()
                proc.send_signal(signal.SIGHUP)  # a removal is no save: ask for the reload
            else:
                save(path, text)
            refused(problem)
            # still polling and alerting on the last good rules
            probes = [item(f"probe{i}", f"Signal probe{i}x seen") for i in range(2, n + 1)]
            server.set("/wire.xml", rss("Wire", [item("p1", "Kim Jong Un reviews the parade"), *probes]))
            assert wait_for(lambda n=n: len(hook.posts) == n, 20), (what, log.read_text()[-2000:])
            polls.append(server.hits("/wire.xml"))
            assert proc.poll() is None
        # put things right: the next good save is taken
        save(config, good_config)
        save(watchlist, GOOD + "  - {id: drill, title: Drill, any: [drill]}\n")
        assert wait_for(lambda: logged(r"reload: rules added: drill", 0), 30), log.read_text()[-2000:]
        server.set("/wire.xml", rss("Wire", [item("d1", "Navy drill off the coast")]))
        assert wait_for(lambda: any("Drill" in str(p.get("title")) for p in hook.posts), 20)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert polls == sorted(polls) and len(set(polls)) == len(polls)  # polled on between every save


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("WATCHER_SOAK"),
    reason="takes over two minutes on 2 cores (ruamel's pure-Python parser reads 5 MB in ~45 s alone,"
    " ~130 s beside a polling daemon): run with WATCHER_SOAK=1",
)
def test_a_5_mb_watch_list_is_loaded_without_stopping_the_polls(
    daemon_rig: tuple[Path, FeedServer, WebhookSink],
) -> None:
    config, server, hook = daemon_rig
    watchlist = config.parent / "watchlist.yaml"
    log = config.parent / "daemon.log"
    with log.open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "watcher", "run", "--config", str(config)], stderr=err)
    try:
        assert wait_for(lambda: len(hook.posts) == 1, 20), log.read_text()
        big = big_watchlist(5_000_000)
        save(watchlist, big)
        saved, before = time.monotonic(), server.hits("/wire.xml")
        seen: list[float] = []
        while not re.search(r"reload: rules added", log.read_text(errors="replace")):
            assert time.monotonic() - saved < 240, "the 5 MB watch list was not taken"
            if server.hits("/wire.xml") - before > len(seen):
                seen.append(time.monotonic())
            time.sleep(0.05)
        took = time.monotonic() - saved
        gaps = [b - a for a, b in itertools.pairwise(seen)]
        server.set("/wire.xml", rss("Wire", [item("x1", "Person Number7 Alpha at summit 7")]))
        assert wait_for(lambda: len(hook.posts) == 2, 30), log.read_text()[-2000:]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    print(f"\n5 MB watch list ({len(big):,} bytes) in force {took:.0f}s after the save; "
          f"{len(seen)} polls meanwhile, longest gap {max(gaps, default=0):.1f}s")  # fmt: skip
    assert max(gaps, default=0) < 10, gaps  # slowed (the loader holds the GIL), never stopped
