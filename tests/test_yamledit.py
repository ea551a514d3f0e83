"""Editing the watch list and config in place: comments and order kept, invalid edits refused untouched."""

from __future__ import annotations

import difflib
import os
import stat
from pathlib import Path

import pytest

from watcher.atomicwrite import write_atomic
from watcher.config import embedded_defaults_dir, load_config
from watcher.errors import ConfigError, Problem, WatcherError
from watcher.rules import load_watchlist
from watcher.yamledit import (
    Edit,
    add_feed,
    add_rule,
    build_rule,
    load_for_edit,
    remove_feed,
    remove_rule,
    set_rule_enabled,
    watchlist_files,
)

WATCHLIST = """\
# The parade watch list: edited by hand, and by `watcher rules`
defaults:
  severity: medium   # most rules

entities:
  kim:
    aliases: [Kim Jong Un, "김정은"]

rules:
  # joint statements are the big one
  - id: joint-statement
    title: "Joint statement"
    severity: high
    all:
      - {entity: kim}
      - any: [joint statement, joint declaration]

  - id: parade
    title: Parade
    any: [military parade]   # the 3 September parade
"""

CONFIG = """\
# watcher config
database: var/watcher.db
feeds:
  - name: yonhap-en  # Yonhap, fastest English wire
    url: https://en.yna.co.kr/RSS/news.xml
    interval: 5m
channels:
  slack:
    url: slack://${SLACK_TOKEN}/#signals   # secret from the service environment
"""


@pytest.fixture
def wl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "watchlist.yaml"
    path.write_text(WATCHLIST, encoding="utf-8")
    return path


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SLACK_TOKEN", raising=False)
    path = tmp_path / "watcher.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return path


def test_add_rule_appends_and_keeps_everything_else(wl: Path) -> None:
    rule = build_rule(
        "kim-visit", "Kim travels", entities=["kim"], any_=["arrives in", "visit"], severity="high"
    )
    edit = add_rule(wl, rule, channels={"slack"})
    assert edit == Edit(wl, "rule 'kim-visit' added to watchlist.yaml")
    assert wl.read_text(encoding="utf-8") == WATCHLIST + (
        "  - id: kim-visit\n"
        "    title: Kim travels\n"
        "    severity: high\n"
        "    all:\n"
        "      - entity: kim\n"
        "    any: [arrives in, visit]\n"
    )
    assert [r.id for r in load_watchlist(wl).rules] == ["joint-statement", "parade", "kim-visit"]


@pytest.mark.parametrize(
    ("rule", "problem"),
    [
        pytest.param(
            build_rule("kim-visit", "Kim travels", entities=["kimm"]),
            Problem("watchlist.yaml", 24, 17, "unknown entity 'kimm' (did you mean 'kim'?)"),
            id="unknown-entity",
        ),
        pytest.param(
            build_rule("parade", "Parade again", any_=["parade"]),
            Problem("watchlist.yaml", 21, 9, "duplicate rule id 'parade' (first at watchlist.yaml:18:9)"),
            id="duplicate-id",
        ),
        pytest.param(
            build_rule("x", "X", any_=["x"], notify=["slak"]),
            Problem(
                "watchlist.yaml", 23, 14, "unknown channel 'slak' (did you mean 'slack'?) (known: slack)"
            ),
            id="unknown-channel",
        ),
        pytest.param(
            {"id": "x", "title": "X", "any": ["x"], "severty": "high"},
            Problem("watchlist.yaml", 24, 5, "unknown key 'severty' (did you mean 'severity'?)"),
            id="unknown-key",
        ),
    ],
)
def test_an_invalid_edit_is_refused_and_the_file_untouched(
    wl: Path, rule: dict[str, object], problem: Problem
) -> None:
    before = wl.stat()
    with pytest.raises(ConfigError) as exc:
        add_rule(wl, rule, channels={"slack"})
    assert exc.value.problems == [problem]
    after = wl.stat()
    assert wl.read_text(encoding="utf-8") == WATCHLIST
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(p.name for p in wl.parent.iterdir()) == ["watchlist.yaml"]  # no temporary file left


def test_remove_rule(wl: Path) -> None:
    edit = remove_rule(wl, "parade")
    assert edit.message == "rule 'parade' removed from watchlist.yaml"
    assert wl.read_text(encoding="utf-8") == WATCHLIST.split("\n  - id: parade")[0] + "\n"


def test_unknown_rule_suggests_a_close_one(wl: Path) -> None:
    with pytest.raises(
        WatcherError, match=r"^no rule 'parde' in watchlist.yaml \(did you mean 'parade'\?\)$"
    ):
        remove_rule(wl, "parde")


def test_disable_then_enable(wl: Path) -> None:
    assert set_rule_enabled(wl, "parade", False).changed
    assert (
        "    title: Parade\n    enabled: false\n    any: [military parade]   # the 3 September parade\n"
        in wl.read_text()
    )
    assert [r.enabled for r in load_watchlist(wl).rules] == [True, False]
    again = set_rule_enabled(wl, "parade", False)
    assert (again.changed, again.message) == (False, "rule 'parade' is already disabled")
    assert set_rule_enabled(wl, "parade", True).message == "rule 'parade' enabled in watchlist.yaml"
    assert "    enabled: true\n" in wl.read_text()
    assert set_rule_enabled(wl, "joint-statement", True).changed is False


def test_rules_in_included_files_are_edited_there(wl: Path) -> None:
    (wl.parent / "more").mkdir()
    extra = wl.parent / "more" / "kim.yaml"
    extra.write_text(
        "rules:\n  - id: kim-speech  # uses the main file's entity\n    title: Speech\n    all: [{entity: kim}, speech]\n"
    )
    wl.write_text("include: [more/kim.yaml]\n" + WATCHLIST)
    assert watchlist_files(wl) == [wl, wl.parent / "more" / "kim.yaml"]
    edit = set_rule_enabled(wl, "kim-speech", False)
    assert edit.path == extra
    assert extra.read_text() == (
        "rules:\n  - id: kim-speech  # uses the main file's entity\n    title: Speech\n    enabled: false\n"
        "    all: [{entity: kim}, speech]\n"
    )
    bad = build_rule("kim-2", "Two", entities=["nobody"])
    with pytest.raises(ConfigError) as exc:
        add_rule(wl, bad, file=extra)
    assert [str(p) for p in exc.value.problems] == ["more/kim.yaml:9:17: unknown entity 'nobody'"]


def test_add_and_remove_feed_without_the_services_secrets(cfg: Path) -> None:
    edit = add_feed(cfg, {"name": "nk-news", "url": "https://www.nknews.org/feed/", "tags": ["north-korea"]})
    assert edit.message == "feed 'nk-news' added to watcher.yaml"
    text = cfg.read_text()
    assert text == CONFIG.replace(
        "channels:",
        "  - name: nk-news\n    url: https://www.nknews.org/feed/\n    tags: [north-korea]\nchannels:",
    )
    assert [f.name for f in load_for_edit(cfg).config.feeds] == ["yonhap-en", "nk-news"]
    remove_feed(cfg, "nk-news")
    assert cfg.read_text() == CONFIG


def test_a_bad_feed_is_refused(cfg: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        add_feed(cfg, {"name": "yonhap-en", "url": "ftp://example.org/feed"})
    assert [str(p) for p in exc.value.problems] == [
        "watcher.yaml:8:10: feeds.1.url: a feed url must be http:// or https:// with a host, got 'ftp://example.org/feed'"
    ]
    assert cfg.read_text() == CONFIG
    with pytest.raises(WatcherError, match=r"no feed 'yonhap' in watcher\.yaml"):
        remove_feed(cfg, "yonhap")


def test_the_embedded_defaults_cannot_be_edited() -> None:
    with pytest.raises(WatcherError, match="no config file to edit"):
        load_for_edit(None)


def test_secrets_still_expand_when_set(cfg: Path) -> None:
    loaded = load_for_edit(cfg, {"SLACK_TOKEN": "T0/B0/xyz"})
    assert loaded.config.channels["slack"].url.get_secret_value() == "slack://T0/B0/xyz/#signals"
    assert (
        load_for_edit(cfg, {}).config.channels["slack"].url.get_secret_value()
        == "slack://${SLACK_TOKEN}/#signals"
    )
    with pytest.raises(ConfigError):
        load_config(cfg, environ={})  # the daemon itself still insists on the secret


def test_write_atomic_keeps_mode_and_follows_symlinks(tmp_path: Path) -> None:
    real = tmp_path / "real.yaml"
    real.write_text("a: 1\n")
    real.chmod(0o640)
    link = tmp_path / "link.yaml"
    link.symlink_to(real)
    write_atomic(link, "a: 2\n")
    assert link.is_symlink() and real.read_text() == "a: 2\n"
    assert stat.S_IMODE(os.stat(real).st_mode) == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link.yaml", "real.yaml"]


def _changes(before: str, after: str) -> list[str]:
    """The lines removed (-) and added (+), in order."""
    return [
        line.rstrip("\n")
        for line in difflib.ndiff(before.splitlines(keepends=True), after.splitlines(keepends=True))
        if line[:1] in "+-"
    ]


def test_edits_of_the_shipped_watch_list_touch_only_their_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    wl = tmp_path / "watchlist.yaml"
    shipped = (embedded_defaults_dir() / "watchlist.yaml").read_text(encoding="utf-8")
    wl.write_text(shipped, encoding="utf-8")  # hand-wrapped flow lists a round trip would re-flow

    set_rule_enabled(wl, "weapons-display", False)
    assert _changes(shipped, wl.read_text()) == ["+     enabled: false"]

    before = wl.read_text()
    add_rule(wl, build_rule("kim-visit", "Kim travels", entities=["kim-jong-un"], any_=["arrives in"]))
    assert _changes(before, wl.read_text()) == [
        "+   - id: kim-visit",
        "+     title: Kim travels",
        "+     all:",
        "+       - entity: kim-jong-un",
        "+     any: [arrives in]",
    ]

    before = wl.read_text()
    remove_rule(wl, "demarche")
    removed = _changes(before, wl.read_text())
    assert removed[0] == "-   - id: demarche" and all(line.startswith("- ") for line in removed)
    assert [
        r.id for r in load_watchlist(wl).rules if r.id in ("demarche", "kim-visit", "weapons-display")
    ] == [
        "weapons-display",
        "kim-visit",
    ]


def test_flow_style_rules_fall_back_to_a_round_trip(wl: Path) -> None:
    flow = (
        "rules:\n  - {id: a, title: A, any: [alpha]}   # one line each\n  - {id: b, title: B, any: [bravo]}\n"
    )
    wl.write_text(flow)
    set_rule_enabled(wl, "a", False)
    assert wl.read_text() == (
        "rules:\n  - {id: a, title: A, enabled: false, any: [alpha]} # one line each\n  - {id: b, title: B, any: [bravo]}\n"
    )
    remove_rule(wl, "b")
    assert [(r.id, r.enabled) for r in load_watchlist(wl).rules] == [("a", False)]
