"""The CLI as users run it: exit codes, file:line:column problems, the embedded defaults."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from watcher.cli import main
from watcher.config import embedded_defaults_dir, load_config

ROOT = Path(__file__).resolve().parents[1]

GOOD_WATCHLIST = """\
entities:
  kim: {aliases: [Kim Jong Un, 김정은]}
rules:
  - id: kim
    title: Kim in the news
    description: Anything about Kim.
    severity: low
    notify: [console]
    any: [{entity: kim}]
"""


def write_config(tmp_path: Path, watchlist: str, extra: str = "") -> Path:
    (tmp_path / "watchlist.yaml").write_text(watchlist, encoding="utf-8")
    cfg = tmp_path / "watcher.yaml"
    cfg.write_text(
        f"database: {tmp_path / 'w.db'}\nchannels:\n  console: {{url: 'console://'}}\n{extra}",
        encoding="utf-8",
    )
    return cfg


def test_embedded_defaults_are_the_shipped_config_files() -> None:
    for name in ("watcher.yaml", "watchlist.yaml"):
        assert (embedded_defaults_dir() / name).read_text() == (ROOT / "config" / name).read_text(), (
            f"watcher/defaults/{name} and config/{name} differ: copy config/{name} over it"
        )


def test_check_passes_on_the_shipped_config(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--config", str(ROOT / "config/watcher.yaml")]) == 0
    out = capsys.readouterr().out
    assert "OK: 35 feeds, 1 channels (console)" in out and "12 rules" in out


def test_check_passes_on_the_embedded_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no config/watcher.yaml here
    monkeypatch.delenv("WATCHER_CONFIG", raising=False)
    assert main(["check"]) == 0
    assert load_config(None).path is None


@pytest.mark.parametrize(
    ("watchlist", "extra", "expected"),
    [
        pytest.param("rules: [\n  - id: x\n", "", "watchlist.yaml:2:3: invalid YAML", id="wrong-yaml"),
        pytest.param(
            GOOD_WATCHLIST,
            "feedz: []\n",
            "watcher.yaml:4:1: unknown key 'feedz' (did you mean 'feeds'?)",
            id="unknown-key",
        ),
        pytest.param(
            GOOD_WATCHLIST.replace("[console]", "[consle]"),
            "",
            "watchlist.yaml:8:14: unknown channel 'consle'",
            id="unknown-channel",
        ),
        pytest.param(
            GOOD_WATCHLIST + GOOD_WATCHLIST.split("rules:\n")[1],
            "",
            "watchlist.yaml:10:9: ",
            id="duplicate-rule-id",
        ),
    ],
)
def test_check_names_file_line_column_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], watchlist: str, extra: str, expected: str
) -> None:
    cfg = write_config(tmp_path, watchlist, extra)
    assert main(["check", "--config", str(cfg)]) == 1
    err = capsys.readouterr().err
    assert expected in err, err
    first = err.splitlines()[0]
    path, line, col, _ = first.split(":", 3)
    assert path.endswith(".yaml") and line.isdigit() and col.isdigit()


def test_unknown_channel_and_duplicate_rule_say_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, GOOD_WATCHLIST.replace("[console]", "[consle]"))
    assert main(["check", "--config", str(cfg)]) == 1
    assert "did you mean 'console'" in capsys.readouterr().err


def test_check_never_prints_a_secret(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_TOKEN", "s3cr3t-t0ken-value")
    cfg = write_config(tmp_path, GOOD_WATCHLIST, "")
    cfg.write_text(cfg.read_text() + "  hook: {url: 'json://127.0.0.1:9/${HOOK_TOKEN}'}\nfeedz: 1\n")
    assert main(["check", "--config", str(cfg)]) == 1
    captured = capsys.readouterr()
    assert "s3cr3t" not in captured.out + captured.err


def test_match_outputs_one_json_line_per_match(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = write_config(tmp_path, GOOD_WATCHLIST)
    items = tmp_path / "items.jsonl"
    items.write_text(
        json.dumps({"id": "1", "title": "김정은 위원장, 베이징 도착", "summary": ""}, ensure_ascii=False)
        + "\n"
        + json.dumps({"id": "2", "title": "Earthquake in Afghanistan", "summary": ""})
        + "\n",
        encoding="utf-8",
    )
    assert main(["match", "--config", str(cfg), "--input", str(items)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(x["item_id"], x["rule_id"], x["severity"]) for x in lines] == [("1", "kim", "low")]
    assert lines[0]["evidence"][0]["text"] == "김정은"


def test_match_reports_bad_lines_with_their_number(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = write_config(tmp_path, GOOD_WATCHLIST)
    items = tmp_path / "items.jsonl"
    items.write_text('{"id": "1", "title": "Kim Jong Un"}\nnot json\n', encoding="utf-8")
    assert main(["match", "--config", str(cfg), "--input", str(items)]) == 1
    assert f"{items}:2:" in capsys.readouterr().err


def test_python_dash_m_and_help_work() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "watcher", "--help"], capture_output=True, text=True, check=True
    )
    for command in ("run", "poll", "check", "match", "demo"):
        assert command in out.stdout


def test_every_command_is_documented_in_the_readme() -> None:
    from watcher.cli import build_parser

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    commands = sorted(sub.choices)  # type: ignore[arg-type]
    missing = [c for c in commands if f"`watcher {c}" not in readme]
    assert missing == [], f"README's command table lacks: {missing}"
