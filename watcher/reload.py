"""Live edits: what changed between two loaded versions, and a file watcher that notices a save.

``diff(old_config, old_watchlist, new_config, new_watchlist)`` gives a ``Changes`` whose ``lines()`` the
daemon logs after a reload ("rules added: kim-visit", ...). ``watch_files`` watches the *directories* of
the config and watch-list files, filtered on their names: editors that save by writing a temporary file
and renaming it over the original replace the inode, and a watch on the file itself would go deaf
after the first save.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchfiles import Change, awatch

from watcher.config import Config, FeedConfig
from watcher.rules import Rule, Watchlist

log = logging.getLogger(__name__)

# settings read once at start-up: a change is logged as needing a restart
RESTART_SETTINGS = (
    "database",
    "http",
    "poll.connect_timeout",
    "poll.read_timeout",
    "poll.deadline",
    "poll.max_bytes",
    "poll.concurrency",
    "poll.per_host",
    "poll.max_redirects",
    "poll.user_agent",
    "poll.parse_workers",
)


@dataclass(frozen=True, slots=True)
class Changes:
    """Names added, removed or changed between two versions of the config and watch list."""

    rules_added: tuple[str, ...] = ()
    rules_removed: tuple[str, ...] = ()
    rules_changed: tuple[str, ...] = ()
    rules_enabled: tuple[str, ...] = ()
    rules_disabled: tuple[str, ...] = ()
    feeds_added: tuple[str, ...] = ()
    feeds_removed: tuple[str, ...] = ()
    feeds_changed: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> changed keys
    feeds_rescheduled: tuple[str, ...] = ()  # feeds in both versions whose interval or jitter changed
    channels_added: tuple[str, ...] = ()
    channels_removed: tuple[str, ...] = ()
    channels_changed: tuple[str, ...] = ()
    settings_changed: tuple[str, ...] = ()
    restart_needed: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        return not any(getattr(self, name) for name in self.__slots__)

    def lines(self) -> list[str]:
        """One log line per kind of change; ``["no changes"]`` when nothing changed."""
        out = []
        for label, names in (
            ("rules added", self.rules_added),
            ("rules removed", self.rules_removed),
            ("rules changed", self.rules_changed),
            ("rules enabled", self.rules_enabled),
            ("rules disabled", self.rules_disabled),
            ("feeds added", self.feeds_added),
            ("feeds removed", self.feeds_removed),
            ("feeds changed", [f"{n} ({', '.join(keys)})" for n, keys in self.feeds_changed.items()]),
            ("channels added", self.channels_added),
            ("channels removed", self.channels_removed),
            ("channels changed", self.channels_changed),
            ("settings changed", self.settings_changed),
            ("needs a restart to take effect", self.restart_needed),
        ):
            if names:
                out.append(f"{label}: {', '.join(names)}")
        return out or ["no changes"]


def diff(old: Config, old_watchlist: Watchlist, new: Config, new_watchlist: Watchlist) -> Changes:
    """Compare two loaded versions (config and watch list) by name."""
    old_rules = {r.id: r for r in old_watchlist.rules}
    new_rules = {r.id: r for r in new_watchlist.rules}
    both = [i for i in new_rules if i in old_rules]
    toggled = {i for i in both if old_rules[i].enabled != new_rules[i].enabled}
    changed_rules = tuple(
        i
        for i in both
        if _rule_body(old_rules[i]) != _rule_body(new_rules[i])
        or _entities_used(old_rules[i], old_watchlist) != _entities_used(new_rules[i], new_watchlist)
    )
    old_feeds = {f.name: f for f in old.feeds}
    new_feeds = {f.name: f for f in new.feeds}
    feeds_changed = {
        n: keys for n in new_feeds if n in old_feeds and (keys := _changed_keys(old_feeds[n], new_feeds[n]))
    }
    jitter_changed = old.poll.jitter != new.poll.jitter
    rescheduled = tuple(
        n
        for n in new_feeds
        if n in old_feeds and (jitter_changed or _interval(old_feeds[n], old) != _interval(new_feeds[n], new))
    )
    old_dump, new_dump = _settings(old), _settings(new)
    settings = tuple(k for k in new_dump if old_dump.get(k) != new_dump[k])
    return Changes(
        rules_added=tuple(i for i in new_rules if i not in old_rules),
        rules_removed=tuple(i for i in old_rules if i not in new_rules),
        rules_changed=changed_rules,
        rules_enabled=tuple(i for i in both if i in toggled and new_rules[i].enabled),
        rules_disabled=tuple(i for i in both if i in toggled and not new_rules[i].enabled),
        feeds_added=tuple(n for n in new_feeds if n not in old_feeds),
        feeds_removed=tuple(n for n in old_feeds if n not in new_feeds),
        feeds_changed=feeds_changed,
        feeds_rescheduled=rescheduled,
        channels_added=tuple(c for c in new.channels if c not in old.channels),
        channels_removed=tuple(c for c in old.channels if c not in new.channels),
        channels_changed=tuple(
            c
            for c in new.channels
            if c in old.channels and _channel(old.channels[c]) != _channel(new.channels[c])
        ),
        settings_changed=tuple(k for k in settings if not _needs_restart(k)),
        restart_needed=tuple(k for k in settings if _needs_restart(k)),
    )


def _rule_body(rule: Rule) -> dict[str, Any]:
    return rule.model_dump(exclude={"enabled"})


def _entities_used(rule: Rule, watchlist: Watchlist) -> dict[str, Any]:
    """The entity definitions a rule refers to: editing an entity's aliases changes the rule."""
    names: set[str] = set()
    _collect_entities(rule.model_dump(by_alias=True), names)
    expanded = {m for n in names for m in watchlist.members(n)} if names else set()
    return {n: watchlist.entities[n].model_dump() for n in sorted(expanded) if n in watchlist.entities}


def _collect_entities(node: Any, out: set[str]) -> None:
    if isinstance(node, Mapping):
        if isinstance(node.get("entity"), str):
            out.add(node["entity"])
        for value in node.values():
            _collect_entities(value, out)
    elif isinstance(node, list | tuple):
        for value in node:
            _collect_entities(value, out)


def _changed_keys(old: FeedConfig, new: FeedConfig) -> tuple[str, ...]:
    a, b = old.model_dump(), new.model_dump()
    return tuple(k for k in b if a.get(k) != b[k])


def _interval(feed: FeedConfig, config: Config) -> float:
    return feed.interval if feed.interval is not None else config.poll.interval


def _channel(channel: Any) -> tuple[str, dict[str, Any]]:
    return channel.url.get_secret_value(), channel.model_dump(exclude={"url"})


def _settings(config: Config) -> dict[str, Any]:
    """Every setting but feeds and channels, flattened one level (``poll.interval``)."""
    out: dict[str, Any] = {}
    for key, value in config.model_dump(exclude={"feeds", "channels"}).items():
        if isinstance(value, dict) and key in ("poll", "delivery"):
            out.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            out[key] = value
    return out


def _needs_restart(key: str) -> bool:
    return key in RESTART_SETTINGS


# ── the file watcher ─────────────────────────────────────────────────────────────────────


OnChange = Callable[[set[Path]], Awaitable[None]]


def _names(paths: Iterable[Path]) -> set[str]:
    """Each path as given and as resolved (a symlinked file changes where its target lives)."""
    out: set[str] = set()
    for p in paths:
        out.add(os.path.abspath(p))
        out.add(str(Path(p).resolve()))
    return out


async def watch_files(
    paths: Callable[[], Collection[Path]],
    on_change: OnChange,
    *,
    stop: asyncio.Event,
    step_ms: int = 200,
    debounce_ms: int = 1600,
) -> None:
    """Call ``on_change(changed files)`` after each save of any of ``paths()``, until ``stop`` is set.

    ``paths`` is asked again after each change, so files a reload adds (a new include) are watched too.
    A burst of events (an editor's write, rename and chmod) arrives as one call.
    """
    while not stop.is_set():
        wanted = set(paths())
        names = _names(wanted)
        dirs = sorted({str(Path(n).parent) for n in names if Path(n).parent.is_dir()})
        if not dirs:
            log.warning("file watcher: none of the directories of %s exists; not watching", sorted(names))
            return
        session = asyncio.Event()  # cancelling awatch sets its event: keep the caller's out of it
        relay = asyncio.create_task(_relay(stop, session))
        try:
            async for changes in awatch(
                *dirs,
                watch_filter=_NameFilter(names),
                stop_event=session,
                step=step_ms,
                debounce=debounce_ms,
                recursive=False,
            ):
                changed = {Path(p) for change, p in changes if change in (Change.added, Change.modified)}
                if changed:
                    await on_change(changed)
                if set(paths()) != wanted:
                    break  # the set of files changed (an include added or removed): watch the new set
        finally:
            relay.cancel()


class _NameFilter:
    def __init__(self, names: set[str]) -> None:
        self.names = names

    def __call__(self, change: Change, path: str) -> bool:
        return os.path.abspath(path) in self.names


async def _relay(source: asyncio.Event, target: asyncio.Event) -> None:
    await source.wait()
    target.set()
