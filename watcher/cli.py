"""The ``watcher`` command: a thin layer that parses arguments, calls the library, renders the result.

Exit codes: 0 success; 1 a check or test found problems; 2 usage or config errors.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from watcher import __version__
from watcher.config import LoadedConfig, load_config, resolve_config_path
from watcher.errors import ConfigError, Problem, WatcherError
from watcher.logs import LOG_FORMATS, channel_secrets, redactor, setup_logging

log = logging.getLogger("watcher")

Handler = Callable[[argparse.Namespace], int]


def _load(args: argparse.Namespace) -> LoadedConfig:
    path = resolve_config_path(args.config)
    loaded = load_config(path)
    if path is None:
        log.info(
            "no config file found (--config, $WATCHER_CONFIG, config/watcher.yaml): using embedded defaults"
        )
    for warning in loaded.warnings:
        log.warning("%s", warning)
    redactor.set_secrets(channel_secrets(loaded.config.channels))
    return loaded


def _print_problems(problems: Sequence[Problem]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr)


# ── commands ──────────────────────────────────────────────────────────────────────────────


def cmd_run(args: argparse.Namespace) -> int:
    from watcher.daemon import Daemon

    loaded = _load(args)
    return asyncio.run(Daemon(loaded, config_path=loaded.path).run())


def cmd_poll(args: argparse.Namespace) -> int:
    from watcher.daemon import poll_once

    if not args.once:
        print("watcher poll: only --once is supported; `watcher run` polls on a schedule", file=sys.stderr)
        return 2
    loaded = _load(args)
    report = asyncio.run(poll_once(loaded))
    polls = report.polls
    ok = sum(p.status in ("ok", "not_modified", "unchanged") for p in polls)
    failed = [p for p in polls if p.status == "error"]
    print(
        f"polled {len(polls)} feeds: {ok} ok, {len(failed)} failed; "
        f"{sum(p.new for p in polls)} new items, {sum(p.matches for p in polls)} matches, "
        f"{sum(p.alerts for p in polls)} alerts; delivered {report.delivery.sent}, "
        f"failed {report.delivery.failed}"
    )
    for p in failed:
        print(f"  {p.feed}: {p.error}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from watcher.daemon import load_rules

    path = resolve_config_path(args.config)
    problems: list[Problem] = []
    try:
        loaded = load_config(path)
    except ConfigError as exc:
        _print_problems(exc.problems)
        return 1
    try:
        rules = load_rules(loaded)
    except ConfigError as exc:
        problems.extend(exc.problems)
        rules = None
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for warning in _template_problems(loaded):
        print(f"warning: {warning} (the shipped template is used instead)", file=sys.stderr)
    if problems:
        _print_problems(problems)
        return 1
    assert rules is not None
    print(
        f"{loaded.shown}: OK: {len(loaded.config.feeds)} feeds, {len(loaded.config.channels)} channels "
        f"({', '.join(loaded.config.channels) or 'none'}); watch list {loaded.watchlist}: "
        f"{len(rules.watchlist.rules)} rules"
    )
    return 0


def _template_problems(loaded: LoadedConfig) -> list[str]:
    from watcher.render import Renderer, user_template_dir

    return Renderer(user_template_dir(loaded.path)).check()


def cmd_match(args: argparse.Namespace) -> int:
    from watcher.evaluate import item_from_json
    from watcher.match import compile_watchlist
    from watcher.rules import load_watchlist
    from watcher.store import evidence_json

    watchlist_path = Path(args.watchlist) if args.watchlist else _load(args).watchlist
    matcher = compile_watchlist(load_watchlist(watchlist_path))
    source = sys.stdin if args.input == "-" else open(args.input, encoding="utf-8")  # noqa: SIM115
    bad = 0
    with source:
        for lineno, line in enumerate(source, 1):
            if not line.strip():
                continue
            try:
                item = item_from_json(json.loads(line))
            except (ValueError, TypeError) as exc:
                print(f"{args.input}:{lineno}: {exc}", file=sys.stderr)
                bad += 1
                continue
            for m in matcher.match(item):
                out = {
                    "item_id": item.key,
                    "rule_id": m.rule_id,
                    "severity": m.severity,
                    "title": item.title,
                    "evidence": evidence_json(m),
                }
                print(json.dumps(out, ensure_ascii=False))
    return 1 if bad else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from watcher.demo import render_report, run_demo

    logging.getLogger().setLevel(logging.WARNING if args.log_level == "info" else args.log_level.upper())
    watchlist = Path(args.watchlist) if args.watchlist else None
    report = asyncio.run(run_demo(step=timedelta(hours=args.step_hours), pace=args.pace, watchlist=watchlist))
    print(render_report(report))
    return 0


def cmd_alerts(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from watcher.alerts import alert_lines, recent, retry
    from watcher.store import Store

    loaded = _load(args)
    with Store.open(loaded.database) as store:
        if args.action == "retry":
            if args.id is None:
                print(
                    "watcher alerts retry: give the alert's number, e.g. `watcher alerts retry 12`",
                    file=sys.stderr,
                )
                return 2
            queued = retry(store, args.id, now=datetime.now(UTC))
            print(
                f"alert #{args.id}: {queued} deliveries queued"
                if queued
                else f"alert #{args.id}: nothing to retry"
            )
            return 0 if queued else 1
        lines = alert_lines(recent(store, limit=args.limit))
    print("\n".join(lines) if lines else "no alerts yet")
    return 0


def cmd_channels(args: argparse.Namespace) -> int:
    from watcher.deliver import test_channel
    from watcher.yamlsrc import did_you_mean

    loaded = _load(args)
    channels = loaded.config.channels
    if args.name not in channels:
        print(f"watcher: no channel {args.name!r}{did_you_mean(args.name, channels)}", file=sys.stderr)
        return 2
    result = test_channel(channels[args.name])
    shown = channels[args.name].display_url
    print(f"{args.name} ({shown}): " + ("sent" if result.ok else f"failed: {result.error}"))
    return 0 if result.ok else 1


# ── parser ────────────────────────────────────────────────────────────────────────────────


def _common(*, defaults: bool) -> argparse.ArgumentParser:
    """The options every command takes, before or after its name. After it, they only override: their
    defaults are set once, on the top-level parser (else ``watcher --config X run`` would lose X)."""

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        metavar="PATH",
        default=default(None),
        help="config file (default: $WATCHER_CONFIG, else config/watcher.yaml, else the embedded defaults)",
    )
    common.add_argument(
        "--log-level",
        default=default(os.environ.get("WATCHER_LOG_LEVEL", "info")),
        help="debug, info, warning, error",
    )
    common.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=default(os.environ.get("WATCHER_LOG_FORMAT", "text")),
        help="text (one line per event; journald-aware) or json (one object per line)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common(defaults=False)
    parser = argparse.ArgumentParser(
        prog="watcher",
        description="Watch news feeds for the signals in your watch list and send one alert per story.",
        parents=[_common(defaults=True)],
    )
    parser.add_argument("--version", action="version", version=f"watcher {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, parents=[common])
        p.set_defaults(handler=handler)
        return p

    add("run", cmd_run, "run the daemon in the foreground (logs to stderr)")
    p = add("poll", cmd_poll, "poll every feed once, match and deliver, then exit")
    p.add_argument("--once", action="store_true", help="one poll of every feed (required)")
    add("check", cmd_check, "validate the config and the watch list; print each problem as file:line:column")
    from watcher import cli_service

    cli_service.register(add)
    p = add("match", cmd_match, "match items from a JSON-lines file offline; one JSON line per match")
    p.add_argument(
        "--input",
        required=True,
        metavar="ITEMS.jsonl",
        help="items: id, title, summary[, source, link, published, language]; - for stdin",
    )
    p.add_argument("--watchlist", metavar="PATH", help="watch list to use (default: the config's)")
    p = add(
        "demo", cmd_demo, "replay the Beijing parade week through the real daemon (no network, no accounts)"
    )
    p.add_argument("--watchlist", metavar="PATH", help="watch list to replay (default: the embedded one)")
    p.add_argument(
        "--pace", type=float, default=0.35, help="seconds of real time per replay step (default 0.35)"
    )
    p.add_argument("--step-hours", type=float, default=2.0, help="replay hours per step (default 2)")
    p = add("alerts", cmd_alerts, "recent alerts with the state of each delivery; `alerts retry ID` resends")
    p.add_argument(
        "action", nargs="?", choices=["list", "retry"], default="list", help="list (default) or retry"
    )
    p.add_argument("id", nargs="?", type=int, help="the alert to retry (its #number in the list)")
    p.add_argument("--limit", type=int, default=20, help="how many alerts to list (default 20)")
    p = add("channels", cmd_channels, "`channels test NAME`: send a test message and show apprise's answer")
    p.add_argument("action", choices=["test"], help="test")
    p.add_argument("name", help="the channel's name in the config")
    from watcher import cli_rules

    cli_rules.register(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        setup_logging(args.log_level, args.log_format)
    except ValueError as exc:
        print(f"watcher: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.handler(args))
    except ConfigError as exc:
        _print_problems(exc.problems)
        print("watcher: fix the problems above (watcher check lists them all)", file=sys.stderr)
        return 2
    except WatcherError as exc:
        print(f"watcher: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `watcher feeds | head`: the reader left; not an error of ours
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
