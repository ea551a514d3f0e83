"""Watch-list commands as users run them: explain, eval, backtest, schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from watcher.cli import main
from watcher.cli_rules import config_json_schema
from watcher.models import Item
from watcher.store import Store

ROOT = Path(__file__).resolve().parents[1]

WATCHLIST = """\
entities:
  kim: {aliases: [Kim Jong Un, 김정은]}
  putin: {aliases: [Putin, Путин]}
rules:
  - id: kim-putin
    title: Kim and Putin
    description: Both leaders named.
    severity: high
    all: [{entity: kim}, {entity: putin}]
"""


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    (tmp_path / "watchlist.yaml").write_text(WATCHLIST, encoding="utf-8")
    path = tmp_path / "watcher.yaml"
    path.write_text(f"database: {tmp_path / 'w.db'}\n", encoding="utf-8")
    return path


def jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def test_committed_config_schema_is_the_generated_one() -> None:
    committed = json.loads((ROOT / "docs/config.schema.json").read_text(encoding="utf-8"))
    assert committed == config_json_schema(), "run: watcher schema config > docs/config.schema.json"


def test_schema_command_prints_valid_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "watchlist"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert "rules" in json.dumps(schema)


def test_explain_says_why_and_why_not(cfg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    items = jsonl(
        tmp_path / "i.jsonl",
        [
            {"id": "a", "title": "Putin meets Kim Jong Un", "summary": ""},
            {"id": "b", "title": "Putin meets Modi", "summary": ""},
        ],
    )
    assert main(["explain", "--config", str(cfg), "--rule", "kim-putin", "--input", str(items)]) == 0
    out = capsys.readouterr().out
    first, second = out.strip().split("\n\n", 1)
    assert "Kim Jong Un" in first and "Putin" in first
    assert "kim" in second.lower()  # the missing entity is named


def test_explain_unknown_rule_suggests(cfg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    items = jsonl(tmp_path / "i.jsonl", [{"id": "a", "title": "x", "summary": ""}])
    assert main(["explain", "--config", str(cfg), "--rule", "kim-putn", "--input", str(items)]) == 2
    assert "did you mean 'kim-putin'" in capsys.readouterr().err


def test_eval_with_separate_labels(cfg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    items = jsonl(
        tmp_path / "i.jsonl",
        [
            {"id": "1", "title": "Putin and Kim Jong Un sign pact", "summary": ""},
            {"id": "2", "title": "Putin meets Modi", "summary": ""},
            {"id": "3", "title": "Путин и Ким", "summary": ""},
        ],
    )
    labels = jsonl(
        tmp_path / "l.jsonl", [{"id": "1", "labels": ["kim-putin"]}, {"id": "3", "labels": ["kim-putin"]}]
    )
    assert main(["eval", "--config", str(cfg), str(items), "--labels", str(labels), "--summary"]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if line.startswith("kim-putin"))
    assert row.split()[1:4] == ["1", "0", "1"]  # TP, FP, FN: 'Ким' is not an alias here


def test_bad_jsonl_line_is_located(cfg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    items = tmp_path / "i.jsonl"
    items.write_text('{"id": "1", "title": "a", "summary": ""}\n{"id": 2,\n', encoding="utf-8")
    assert main(["eval", "--config", str(cfg), str(items)]) == 2
    assert f"{items}:2:" in capsys.readouterr().err


def test_backtest_over_stored_items(cfg: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC)
    with Store.open(tmp_path / "w.db") as store:
        store.store_items(
            [
                Item(
                    feed="f",
                    key=str(i),
                    link=f"https://x/{i}",
                    title=title,
                    summary="",
                    published=now - timedelta(days=age),
                )
                for i, (title, age) in enumerate(
                    [("Putin hosts Kim Jong Un", 1), ("Weather", 2), ("Kim Jong Un and Putin again", 60)]
                )
            ],
            now=now,
        )
    assert main(["backtest", "--config", str(cfg), "--since", "30d", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("2 stored items published since")
    assert "Putin hosts Kim Jong Un" in out and "again" not in out
