"""Watch-list commands: ``explain``, ``backtest``, ``eval``, ``schema``. Thin: parse, call, render."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from watcher.config import Config, load_config, resolve_config_path
from watcher.errors import ConfigError, Problem
from watcher.match import Matcher, compile_watchlist
from watcher.models import Item
from watcher.rules import load_watchlist, watchlist_json_schema
from watcher.units import parse_duration

AddCommand = Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]


def _matcher(args: argparse.Namespace) -> Matcher:
    if args.watchlist:
        return compile_watchlist(load_watchlist(Path(args.watchlist)))
    loaded = load_config(resolve_config_path(args.config))
    return compile_watchlist(load_watchlist(loaded.watchlist, channels=set(loaded.config.channels)))


def read_jsonl(path: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-empty line; a bad line raises ConfigError naming it."""
    source = sys.stdin if path == "-" else open(path, encoding="utf-8")  # noqa: SIM115
    with source:
        for lineno, line in enumerate(source, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(Problem(path, lineno, exc.colno, f"not JSON: {exc.msg}")) from exc
            if not isinstance(obj, dict):
                raise ConfigError(Problem(path, lineno, 1, "each line must be a JSON object"))
            yield lineno, obj


def _items(path: str) -> Iterator[tuple[Item, dict[str, Any]]]:
    from watcher.evaluate import item_from_json

    for lineno, obj in read_jsonl(path):
        try:
            yield item_from_json(obj), obj
        except (ValueError, TypeError) as exc:
            raise ConfigError(Problem(path, lineno, 1, str(exc))) from exc


def cmd_explain(args: argparse.Namespace) -> int:
    matcher = _matcher(args)
    if args.rule not in matcher.rule_ids:
        from watcher.yamlsrc import did_you_mean

        print(
            f"watcher: no enabled rule {args.rule!r}{did_you_mean(args.rule, matcher.rule_ids)}",
            file=sys.stderr,
        )
        return 2
    for item, _ in _items(args.input):
        print(matcher.explain(item, args.rule).render())
        print()
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from watcher.evaluate import evaluate

    matcher = _matcher(args)
    labels: dict[str, list[str]] = {}
    if args.labels:
        for _, obj in read_jsonl(args.labels):
            labels[str(obj.get("id"))] = list(obj.get("labels") or [])
    pairs = [(item, labels.get(item.key, raw.get("labels") or [])) for item, raw in _items(args.input)]
    report = evaluate(pairs, matcher)
    print(report.render(list_items=not args.summary))
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from watcher.evaluate import backtest
    from watcher.store import Store

    loaded = load_config(resolve_config_path(args.config))
    matcher = _matcher(args)
    if args.rule and args.rule not in matcher.rule_ids:
        from watcher.yamlsrc import did_you_mean

        print(
            f"watcher: no enabled rule {args.rule!r}{did_you_mean(args.rule, matcher.rule_ids)}",
            file=sys.stderr,
        )
        return 2
    since = datetime.now(UTC) - timedelta(seconds=parse_duration(args.since))
    with Store.open(loaded.database) as store:
        total = store.count_items(since=since)
        progress = _progress_bar(total) if sys.stderr.isatty() and not args.quiet else None
        report = backtest(store.iter_items(since=since), matcher, rule=args.rule, progress=progress)
    if progress is not None:
        print(file=sys.stderr)
    print(f"{total} stored items published since {since:%Y-%m-%d %H:%M} UTC")
    print(report.render())
    return 0


def _progress_bar(total: int) -> Callable[[int], None]:
    def show(done: int) -> None:
        width = 40
        filled = int(width * done / total) if total else width
        print(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}", end="", file=sys.stderr, flush=True
        )

    return show


def cmd_schema(args: argparse.Namespace) -> int:
    schema = config_json_schema() if args.kind == "config" else watchlist_json_schema()
    print(json.dumps(schema, indent=2, ensure_ascii=False))
    return 0


def config_json_schema() -> dict[str, Any]:
    schema = Config.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "watcher config (watcher.yaml)"
    return schema


def register(add: AddCommand) -> None:
    p = add("explain", cmd_explain, "say why a rule did or did not match each item of a JSON-lines file")
    p.add_argument("--rule", required=True, metavar="ID", help="the rule to explain")
    p.add_argument(
        "--input", required=True, metavar="ITEMS.jsonl", help="items: id, title, summary, ...; - for stdin"
    )
    p.add_argument("--watchlist", metavar="PATH", help="watch list to use (default: the config's)")

    p = add(
        "eval", cmd_eval, "precision, recall and F1 per rule on labeled items; lists misses and false alarms"
    )
    p.add_argument("input", metavar="LABELED.jsonl", help="items, each with a `labels` list of rule ids")
    p.add_argument("--labels", metavar="LABELS.jsonl", help="labels kept apart: lines of {id, labels}")
    p.add_argument("--watchlist", metavar="PATH", help="watch list to use (default: the config's)")
    p.add_argument("--summary", action="store_true", help="the table only, without the item lists")

    p = add(
        "backtest",
        cmd_backtest,
        "run the current watch list over stored items: hit counts and samples per rule",
    )
    p.add_argument(
        "--since", default="30d", metavar="DURATION", help="items published within this (default 30d)"
    )
    p.add_argument("--rule", metavar="ID", help="only this rule")
    p.add_argument("--watchlist", metavar="PATH", help="watch list to try (default: the config's)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")

    p = add("schema", cmd_schema, "print the JSON Schema of the watch list or the config (for editors)")
    p.add_argument("kind", choices=["watchlist", "config"], nargs="?", default="watchlist")
