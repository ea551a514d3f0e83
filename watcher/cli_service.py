"""Service commands: ``status``, ``feeds [add|remove]``, ``rules [list|add|remove|enable|disable]``.

Thin: each parses its arguments, calls one library function (watcher.status, watcher.yamledit), renders.
None of them needs the channels' secrets: an unset ``${NAME}`` is fine here (the daemon still insists).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from watcher.config import LoadedConfig, load_config, resolve_config_path
from watcher.errors import ConfigError, WatcherError
from watcher.models import SEVERITIES
from watcher.rules import load_watchlist
from watcher.status import collect_status, daemon_state, feeds_report, render_feeds, render_status
from watcher.yamledit import (
    Edit,
    LenientEnviron,
    add_feed,
    add_rule,
    build_rule,
    load_for_edit,
    remove_feed,
    remove_rule,
    set_rule_enabled,
)
from watcher.yamlsrc import parse_yaml_text

AddCommand = Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]


def _config(args: argparse.Namespace) -> LoadedConfig:
    return load_config(resolve_config_path(args.config), environ=LenientEnviron())


def _enabled_rules(loaded: LoadedConfig) -> set[str]:
    try:
        return {r.id for r in load_watchlist(loaded.watchlist).rules if r.enabled}
    except ConfigError:
        return set()  # status still answers with a broken watch list (`watcher check` says why)


def cmd_status(args: argparse.Namespace) -> int:
    loaded = _config(args)
    now = datetime.now(UTC)
    report = collect_status(loaded, active_rules=_enabled_rules(loaded), now=now)
    print(render_status(report, now=now))
    return 0 if report.daemon.running else 1


def cmd_feeds(args: argparse.Namespace) -> int:
    if args.action == "list":
        now = datetime.now(UTC)
        print(render_feeds(feeds_report(_config(args), now=now), now=now))
        return 0
    loaded = load_for_edit(resolve_config_path(args.config))
    assert loaded.path is not None
    if not args.name or (args.action == "add" and not args.url):
        raise WatcherError(f"usage: watcher feeds {args.action} NAME{' URL' if args.action == 'add' else ''}")
    if args.action == "remove":
        return _edited(remove_feed(loaded.path, args.name), loaded)
    feed: dict[str, Any] = {"name": args.name, "url": args.url}
    for key in ("interval", "publisher", "tier"):
        if getattr(args, key):
            feed[key] = getattr(args, key)
    if args.tag:
        feed["tags"] = args.tag
    return _edited(add_feed(loaded.path, feed), loaded)


def cmd_rules(args: argparse.Namespace) -> int:
    if args.action == "list":
        loaded = _config(args)
        for r in load_watchlist(loaded.watchlist).rules:
            print(f"{r.id:<28} {'on ' if r.enabled else 'off'} {r.severity:<8} {r.title}")
        return 0
    if not args.id:
        raise WatcherError(f"usage: watcher rules {args.action} ID")
    loaded = load_for_edit(resolve_config_path(args.config))
    channels = set(loaded.config.channels)
    if args.action == "remove":
        return _edited(remove_rule(loaded.watchlist, args.id, channels=channels), loaded)
    if args.action in ("enable", "disable"):
        return _edited(
            set_rule_enabled(loaded.watchlist, args.id, args.action == "enable", channels=channels), loaded
        )
    rule = build_rule(
        args.id,
        args.title or args.id,
        any_=args.any or (),
        all_=args.all or (),
        entities=args.entity or (),
        severity=args.severity,
        notify=args.notify or (),
        tags=args.tag or (),
        enabled=not args.disabled,
        extra=_yaml_mapping(args.yaml) if args.yaml else None,
    )
    if not any(k in rule for k in ("all", "any", "at_least", "near")):
        raise WatcherError("a rule needs a condition: --any PHRASE, --all PHRASE, --entity NAME or --yaml")
    file = Path(args.file) if args.file else None
    return _edited(add_rule(loaded.watchlist, rule, channels=channels, file=file), loaded)


def _yaml_mapping(text: str) -> dict[str, Any]:
    doc = parse_yaml_text(text, "--yaml")
    if not isinstance(doc, dict):
        raise WatcherError("--yaml takes a mapping, e.g. '{near: {terms: [Kim, Putin], within: 5}}'")
    plain: dict[str, Any] = _plain(doc)
    return plain


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _edited(edit: Edit, loaded: LoadedConfig) -> int:
    print(edit.message)
    if edit.changed:
        daemon = daemon_state(loaded.database)
        if daemon.running:
            print(f"the running daemon (pid {daemon.pid}) reloads it on its own")
    return 0


def register(add: AddCommand) -> None:
    add(
        "status",
        cmd_status,
        "is the daemon running; last poll, outbox, database size, failing and quiet feeds",
    )

    p = add(
        "feeds", cmd_feeds, "each feed's health; `feeds add NAME URL` and `feeds remove NAME` edit the config"
    )
    p.add_argument("action", nargs="?", choices=["list", "add", "remove"], default="list")
    p.add_argument("name", nargs="?", help="the feed's name (add, remove)")
    p.add_argument("url", nargs="?", help="the feed's URL (add)")
    p.add_argument("--interval", metavar="DURATION", help="poll interval, e.g. 5m (default: the config's)")
    p.add_argument("--tag", action="append", metavar="TAG", help="a tag for rules to scope on (repeatable)")
    p.add_argument("--publisher", help="the outlet (several feeds of one outlet count as one source)")
    p.add_argument("--tier", choices=["primary", "secondary"])

    p = add(
        "rules", cmd_rules, "list rules; `rules add|remove|enable|disable ID` edits the watch list in place"
    )
    p.add_argument(
        "action", nargs="?", choices=["list", "add", "remove", "enable", "disable"], default="list"
    )
    p.add_argument("id", nargs="?", help="the rule's id")
    p.add_argument("--title", help="what the alert is about (add)")
    p.add_argument(
        "--any", action="append", metavar="PHRASE", help="match if any of these appears (repeatable)"
    )
    p.add_argument("--all", action="append", metavar="PHRASE", help="and all of these (repeatable)")
    p.add_argument(
        "--entity", action="append", metavar="NAME", help="and this entity of the watch list (repeatable)"
    )
    p.add_argument("--severity", choices=SEVERITIES)
    p.add_argument("--notify", action="append", metavar="CHANNEL", help="only these channels (repeatable)")
    p.add_argument("--tag", action="append", metavar="TAG", help="a tag channels can filter on (repeatable)")
    p.add_argument("--disabled", action="store_true", help="add it switched off")
    p.add_argument(
        "--yaml", metavar="MAPPING", help="more rule keys as YAML, e.g. '{window: 24h, min_sources: 2}'"
    )
    p.add_argument("--file", metavar="PATH", help="add it to this included file instead of the main one")
