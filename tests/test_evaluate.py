"""Evaluation and backtests: input lines, scores, reports, and the shipped watch list's measured quality."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from watcher.evaluate import RuleScore, backtest, evaluate, item_from_json
from watcher.match import Matcher, compile_watchlist
from watcher.models import Item
from watcher.rules import load_watchlist

ROOT = Path(__file__).resolve().parents[1]
LABELED = ROOT / "tests" / "fixtures" / "labeled.jsonl"


def shared_dir() -> Path:
    default = Path(__file__).resolve().parents[2] / "shared"
    return Path(os.environ.get("WATCHER_SHARED", default)) if not default.exists() else default


def shipped() -> Matcher:
    return compile_watchlist(load_watchlist(ROOT / "config" / "watchlist.yaml"))


def small(tmp_path: Path) -> Matcher:
    path = tmp_path / "wl.yaml"
    path.write_text(
        "entities:\n  putin: {aliases: [Putin]}\n"
        "rules:\n"
        "  - {id: putin, title: Putin, any: [{entity: putin}]}\n"
        "  - {id: parade, title: Parade, any: [parade]}\n",
        encoding="utf-8",
    )
    return compile_watchlist(load_watchlist(path))


def test_item_from_json_reads_an_input_line() -> None:
    obj = {
        "id": "a-1",
        "title": "T",
        "summary": "S",
        "source": "bbc",
        "link": "https://example.org/a",
        "published": "2025-09-03T09:07:04Z",
        "language": "en-gb",
    }
    assert item_from_json(obj) == Item(
        feed="bbc",
        key="a-1",
        link="https://example.org/a",
        title="T",
        summary="S",
        published=datetime(2025, 9, 3, 9, 7, 4, tzinfo=UTC),
        published_known=True,
        language="en-gb",
    )
    minimal = item_from_json({"id": 7, "title": "T", "summary": ""})
    assert (minimal.key, minimal.feed, minimal.link, minimal.language, minimal.published_known) == (
        "7",
        "input",
        "",
        None,
        False,
    )


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ({"title": "T", "summary": "S"}, "missing field 'id' (each line needs id, title and summary)"),
        ({"id": "1", "summary": "S"}, "missing field 'title' (each line needs id, title and summary)"),
        ({"id": "1", "title": "T"}, "missing field 'summary' (each line needs id, title and summary)"),
        ({"id": "1", "title": 3, "summary": "S"}, "field 'title' must be a string"),
        (
            {"id": "1", "title": "T", "summary": "S", "published": "yesterday"},
            "field 'published' is not an ISO 8601 date: 'yesterday'",
        ),
    ],
)
def test_item_from_json_names_the_bad_field(obj: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError) as info:
        item_from_json(obj)
    assert str(info.value) == message


def test_evaluate_scores_each_rule_and_lists_misses(tmp_path: Path) -> None:
    lines = [
        ({"id": "1", "title": "Putin speaks", "summary": ""}, ["putin"]),
        ({"id": "2", "title": "Putin at the parade", "summary": ""}, ["putin"]),
        ({"id": "3", "title": "A quiet day", "summary": ""}, ["parade"]),
        ({"id": "4", "title": "Vladimir V. Putin", "summary": ""}, []),
    ]
    report = evaluate(((item_from_json(o), labels) for o, labels in lines), small(tmp_path))
    assert report.rules == (
        RuleScore("putin", tp=2, fp=1, fn=0, misses=(), false_alarms=("4",)),
        RuleScore("parade", tp=0, fp=1, fn=1, misses=("3",), false_alarms=("2",)),
    )
    assert (report.total.tp, report.total.fp, report.total.fn) == (2, 2, 1)
    assert round(report.rules[0].precision, 3) == 0.667 and report.rules[0].recall == 1.0
    text = report.render()
    assert text.splitlines()[:4] == [
        "4 items",
        "rule                     TP   FP   FN precision  recall     F1",
        "--------------------------------------------------------------",
        "putin                     2    1    0     0.667   1.000  0.800",
    ]
    assert "     missed parade: 3 A quiet day" in text
    assert "false alarm putin: 4 Vladimir V. Putin" in text


def test_backtest_counts_hits_and_keeps_samples(tmp_path: Path) -> None:
    items = [item_from_json({"id": str(i), "title": f"Putin day {i}", "summary": ""}) for i in range(250)]
    seen: list[int] = []
    report = backtest(items, small(tmp_path), progress=seen.append)
    assert (report.items, report.hits) == (250, {"putin": 250, "parade": 0})
    assert [i.key for i, _ in report.samples["putin"]] == ["0", "1", "2", "3", "4"]
    assert seen == [100, 200, 250]
    only = backtest(items[:3], small(tmp_path), rule="parade")
    assert only.hits == {"parade": 0}
    assert report.render().splitlines()[:3] == [
        "250 items",
        "putin     250 hits (100.0%)",
        "parade      0 hits (0.0%)",
    ]
    with pytest.raises(KeyError):
        backtest(items, small(tmp_path), rule="nope")


def test_shipped_watchlist_on_our_labeled_set() -> None:
    rows = [json.loads(line) for line in LABELED.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 100
    assert {r["language"] for r in rows} >= {"en", "ko", "ja", "zh", "ru"}
    report = evaluate(((item_from_json(r), r["labels"]) for r in rows), shipped())
    assert report.total.f1 >= 0.9, report.render()
    for score in report.rules:
        assert score.f1 >= 0.8, report.render()


@pytest.mark.corpus
def test_shipped_watchlist_on_the_real_parade_week() -> None:
    data = shared_dir() / "data" / "sept2025"
    if not (data / "entries.jsonl").exists():
        pytest.skip("needs /work/shared/data (the shared corpus)")
    labels = {}
    for line in (data / "labels.jsonl").read_text(encoding="utf-8").splitlines():
        obj = json.loads(line)
        labels[obj["id"]] = obj["labels"]
    items = [
        item_from_json(json.loads(x))
        for x in (data / "entries.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert len(items) == 1745
    report = evaluate(((it, labels.get(it.key, [])) for it in items), shipped())
    assert report.total.precision >= 0.85, report.render()
    assert report.total.recall >= 0.85, report.render()
