"""``watcher status``, ``watcher feeds``, ``watcher rules`` as a user types them (in-process ``main``)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from watcher.cli import main

WATCHLIST = """\
# rules for the parade week
entities:
  kim: {aliases: [Kim Jong Un]}
rules:
  - id: parade   # the big one
    title: Military parade
    any: [military parade]
"""


@pytest.fixture(autouse=True)
def _no_leftover_handler() -> Iterator[None]:
    root = logging.getLogger()
    before = list(root.handlers)
    yield
    for h in list(root.handlers):
        if h not in before:
            root.removeHandler(h)


@pytest.fixture
def cfg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HOOK_TOKEN", raising=False)
    (tmp_path / "watchlist.yaml").write_text(WATCHLIST)
    path = tmp_path / "watcher.yaml"
    path.write_text(
        f"database: {tmp_path / 'w.db'}\n"
        "feeds:\n  - {name: yonhap, url: 'https://en.yna.co.kr/RSS/news.xml'}  # the wire\n"
        "channels:\n  hook: {url: 'json://127.0.0.1:9/${HOOK_TOKEN}'}\n"
    )
    return path


def test_rules_add_disable_list_remove(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--config", str(cfg), "rules", "add", "kim-visit", "--title", "Kim travels", "--entity", "kim"]
    assert main([*args, "--any", "arrives in", "--notify", "hook", "--severity", "high"]) == 0
    assert capsys.readouterr().out == "rule 'kim-visit' added to watchlist.yaml\n"
    assert main(["rules", "disable", "parade", "--config", str(cfg)]) == 0
    assert capsys.readouterr().out == "rule 'parade' disabled in watchlist.yaml\n"
    assert main(["--config", str(cfg), "rules"]) == 0
    assert capsys.readouterr().out == (
        "parade                       off medium   Military parade\nkim-visit                    on  high     Kim travels\n"
    )
    assert (cfg.parent / "watchlist.yaml").read_text() == WATCHLIST.replace(
        "    title: Military parade\n", "    title: Military parade\n    enabled: false\n"
    ) + (
        "  - id: kim-visit\n    title: Kim travels\n    severity: high\n    notify: [hook]\n"
        "    all:\n      - entity: kim\n    any: [arrives in]\n"
    )
    assert main(["--config", str(cfg), "rules", "remove", "kim-visit"]) == 0
    assert main(["--config", str(cfg), "rules", "enable", "parade"]) == 0
    capsys.readouterr()


def test_an_invalid_rule_is_refused_with_its_position(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = (cfg.parent / "watchlist.yaml").read_text()
    assert main(["--config", str(cfg), "rules", "add", "x", "--entity", "kimm"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("watchlist.yaml:11:17: unknown entity 'kimm' (did you mean 'kim'?)\n")
    assert (cfg.parent / "watchlist.yaml").read_text() == before


def test_a_rule_needs_a_condition(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(cfg), "rules", "add", "x", "--title", "X"]) == 2
    assert "a rule needs a condition" in capsys.readouterr().err


def test_rules_add_with_yaml_keys(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    near = "{near: {terms: [Kim, Putin], within: 5}, window: 24h}"
    assert main(["--config", str(cfg), "rules", "add", "kp", "--title", "Kim and Putin", "--yaml", near]) == 0
    assert (
        (cfg.parent / "watchlist.yaml")
        .read_text()
        .endswith(
            "  - id: kp\n    title: Kim and Putin\n    near:\n      terms: [Kim, Putin]\n      within: 5\n    window: 24h\n"
        )
    )
    capsys.readouterr()


def test_feeds_add_remove_and_table(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = "https://www.nknews.org/feed/"
    assert (
        main(["--config", str(cfg), "feeds", "add", "nk-news", url, "--interval", "10m", "--tag", "korea"])
        == 0
    )
    assert capsys.readouterr().out == "feed 'nk-news' added to watcher.yaml\n"
    assert (
        "  - name: nk-news\n    url: https://www.nknews.org/feed/\n    interval: 10m\n    tags: [korea]\n"
        in cfg.read_text()
    )
    assert main(["--config", str(cfg), "feeds"]) == 0
    assert capsys.readouterr().out == (
        "FEED     STATUS  LAST SUCCESS  FAILS  ITEMS/DAY  LAST ERROR\n"
        "yonhap   -       never         0      -\n"
        "nk-news  -       never         0      -\n"
    )
    assert main(["--config", str(cfg), "feeds", "remove", "nk-news"]) == 0
    assert "nk-news" not in cfg.read_text()
    assert main(["--config", str(cfg), "feeds", "add", "only-a-name"]) == 2
    assert "usage: watcher feeds add NAME URL" in capsys.readouterr().err


def test_status_without_a_daemon(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(cfg), "status"]) == 1
    assert capsys.readouterr().out == f"daemon:    not running\ndatabase:  {cfg.parent / 'w.db'} (none yet)\n"
    assert not (cfg.parent / "w.db").exists()


def test_options_before_the_command_are_kept(cfg: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--config", str(cfg), "check"]) == 1  # ${HOOK_TOKEN} is unset: the daemon would refuse
    assert capsys.readouterr().err == (
        "watcher.yaml:5:9: channels.hook: ${HOOK_TOKEN} is not set: export HOOK_TOKEN=... "
        "(or pass it as a systemd credential named HOOK_TOKEN)\n"
    )


def test_json_logs(cfg: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "s3cr3t-token")
    cfg.write_text(cfg.read_text() + "poll: {interval: 30s}\n")
    items = cfg.parent / "items.jsonl"
    items.write_text('{"id": "1", "title": "Kim Jong Un reviews the military parade", "summary": ""}\n')
    assert main(["--log-format", "json", "--config", str(cfg), "match", "--input", str(items)]) == 0
    out, err = capsys.readouterr()
    [record] = [json.loads(line) for line in err.splitlines()]
    assert (record["level"], record["logger"]) == ("warning", "watcher")
    assert record["message"].endswith(
        "feed 'yonhap' polls remote host en.yna.co.kr every 30s; be polite: once a minute or less often"
    )
    assert json.loads(out)["rule_id"] == "parade"
