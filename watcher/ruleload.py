"""Loading a watch list: includes, defaults, and the checks that look across rules and files.

Each file is read with positions kept (watcher.yamlsrc) and validated on its own, so a problem in an
included file points into that file. Then names are checked across all files: unknown entities and
channels (with a "did you mean"), duplicate rule ids and entity names, regexes that do not compile or
that could backtrack catastrophically. Every problem found is raised at once in one ConfigError.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regex

from watcher.errors import ConfigError, Problem
from watcher.rules import Defaults, Entity, Rule, Scope, Watchlist, WatchlistFile
from watcher.textnorm import fold
from watcher.yamlsrc import did_you_mean, display_path, position, read_yaml, validate

REGEX_FLAGS = regex.IGNORECASE | regex.V0
MAX_INCLUDE_DEPTH = 20


def compile_regex(pattern: str) -> regex.Pattern[str]:
    """Compile a rule's regex. ValueError when it is invalid or prone to catastrophic backtracking."""
    try:
        compiled = regex.compile(pattern, REGEX_FLAGS)
    except regex.error as exc:
        raise ValueError(f"invalid regex {pattern!r}: {exc}") from exc
    risk = backtracking_risk(pattern)
    if risk:
        raise ValueError(
            f"regex {pattern!r} {risk}, which can take exponential time; rewrite it without that"
        )
    return compiled


def backtracking_risk(pattern: str) -> str | None:
    """Why ``pattern`` may backtrack catastrophically (a quantifier inside a quantified group), else None."""
    try:
        import re._parser as sre_parse  # type: ignore[import-not-found,unused-ignore]

        parsed = sre_parse.parse(pattern)
    except (re.error, ImportError, ValueError, TypeError):
        return None  # regex-module syntax that re does not read: the run-time timeout still bounds it
    repeats = {"MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"}

    def walk(items: Any, inside_repeat: bool) -> str | None:
        for op, av in items:
            name = str(op)
            if name in repeats:
                _low, high, sub = av
                many = high > 1  # MAXREPEAT is a large int
                if inside_repeat and many and name != "POSSESSIVE_REPEAT":
                    return "nests a quantifier inside a quantified group (like (a+)+)"
                found = walk(sub, inside_repeat or (many and name != "POSSESSIVE_REPEAT"))
                if found:
                    return found
            elif name == "SUBPATTERN":
                found = walk(av[-1], inside_repeat)
                if found:
                    return found
            elif name == "BRANCH":
                for branch in av[1]:
                    found = walk(branch, inside_repeat)
                    if found:
                        return found
            elif name in {"ASSERT", "ASSERT_NOT"}:
                found = walk(av[1], inside_repeat)
                if found:
                    return found
        return None

    return walk(parsed, False)


@dataclass(slots=True)
class _File:
    shown: str
    doc: Any
    data: WatchlistFile
    settings: dict[str, Any]  # defaults in force for this file's rules (inherited, then its own)


def load(path: Path, *, channels: Collection[str] | None = None) -> Watchlist:
    """Read ``path`` and its includes, apply defaults, check names. Raises ConfigError with every problem."""
    problems: list[Problem] = []
    files: list[_File] = []
    _read(path, {}, [], set(), problems, files, None)
    if files:
        watchlist = _merge(files, channels, problems)
    if problems:
        order = {f.shown: i for i, f in enumerate(files)}
        problems.sort(key=lambda p: (order.get(p.file, -1), p.line, p.column))
        raise ConfigError(problems)
    return watchlist


def _read(
    path: Path,
    inherited: dict[str, Any],
    stack: list[Path],
    seen: set[Path],
    problems: list[Problem],
    files: list[_File],
    where: Problem | None,
) -> None:
    real = path.resolve()
    if real in stack:
        chain = " -> ".join(display_path(p) for p in [*stack, real])
        if where:
            problems.append(Problem(where.file, where.line, where.column, f"include cycle: {chain}"))
        return
    if real in seen:
        return  # included twice (a diamond): read once
    try:
        doc = read_yaml(path)
        data = validate(WatchlistFile, doc, display_path(path))
    except ConfigError as exc:
        for p in exc.problems:
            if where and p.line == 0:  # the file itself could not be read: point at the include line
                problems.append(
                    Problem(where.file, where.line, where.column, f"{where.message}: {p.message}")
                )
            else:
                problems.append(p)
        return
    seen.add(real)
    shown = display_path(path)
    settings = _apply_defaults(inherited, data.defaults)
    files.append(_File(shown, doc, data, settings))
    if len(stack) >= MAX_INCLUDE_DEPTH:
        problems.append(Problem(shown, 1, 1, f"includes nested deeper than {MAX_INCLUDE_DEPTH} files"))
        return
    for i, item in enumerate(data.include):
        line, col = position(doc, ["include", i])
        here = Problem(shown, line, col, f"include {item!r}")
        _read(path.parent / item, settings, [*stack, real], seen, problems, files, here)


def _apply_defaults(inherited: dict[str, Any], defaults: Defaults | None) -> dict[str, Any]:
    settings = dict(inherited)
    if defaults is None:
        return settings
    for name in defaults.model_fields_set:
        value = getattr(defaults, name)
        if name == "scope":
            base: Scope = settings.get("scope", Scope())
            value = base.model_copy(update={k: getattr(value, k) for k in value.model_fields_set})
        settings[name] = value
    return settings


def _resolve(rule: Rule, settings: dict[str, Any]) -> Rule:
    update: dict[str, Any] = {}
    for name, value in settings.items():
        if name == "scope" and "scope" in rule.model_fields_set:
            own = {k: getattr(rule.scope, k) for k in rule.scope.model_fields_set}
            update["scope"] = value.model_copy(update=own)
        elif name not in rule.model_fields_set:
            update[name] = value
    return rule.model_copy(update=update) if update else rule


def _merge(files: list[_File], channels: Collection[str] | None, problems: list[Problem]) -> Watchlist:
    entities: dict[str, Entity] = {}
    groups: dict[str, list[str]] = {}
    defined: dict[str, str] = {}  # name -> where first defined
    for f in files:
        for kind, table in (("entities", f.data.entities), ("groups", f.data.groups)):
            for name in table:
                line, col = position(f.doc, [kind, name], key=True)
                if name in defined:
                    problems.append(
                        Problem(f.shown, line, col, f"{name!r} is already defined at {defined[name]}")
                    )
                    continue
                defined[name] = f"{f.shown}:{line}:{col}"
                if kind == "entities":
                    entities[name] = f.data.entities[name]
                else:
                    groups[name] = f.data.groups[name]
        for name, entity in f.data.entities.items():
            for key in ("aliases", "exclude"):
                for i, alias in enumerate(getattr(entity, key)):
                    if not fold(alias):
                        line, col = position(f.doc, ["entities", name, key, i])
                        problems.append(Problem(f.shown, line, col, f"{alias!r} is empty once normalized"))
    for f in files:
        for name, members in f.data.groups.items():
            for i, member in enumerate(members):
                if member not in entities:
                    line, col = position(f.doc, ["groups", name, i])
                    what = "a group: groups hold entities" if member in groups else "an unknown entity"
                    hint = "" if member in groups else did_you_mean(member, entities)
                    problems.append(
                        Problem(f.shown, line, col, f"group {name!r}: {member!r} is {what}{hint}")
                    )
    rules: list[Rule] = []
    first: dict[str, str] = {}
    names = [*entities, *groups]
    for f in files:
        if channels is not None and f.data.defaults is not None:
            for i, ch in enumerate(f.data.defaults.notify):
                _check_channel(ch, channels, f, ["defaults", "notify", i], problems)
        for r_index, rule in enumerate(f.data.rules):
            loc: list[str | int] = ["rules", r_index]
            line, col = position(f.doc, [*loc, "id"])
            if rule.id in first:
                problems.append(
                    Problem(f.shown, line, col, f"duplicate rule id {rule.id!r} (first at {first[rule.id]})")
                )
            else:
                first[rule.id] = f"{f.shown}:{line}:{col}"
            for kind, value, where in _terms(f.doc["rules"][r_index], loc):
                message = _check_term(kind, value, names)
                if message:
                    line, col = position(f.doc, where)
                    problems.append(Problem(f.shown, line, col, message))
            if channels is not None:
                for i, ch in enumerate(rule.notify):
                    _check_channel(ch, channels, f, [*loc, "notify", i], problems)
            rules.append(_resolve(rule, f.settings))
    return Watchlist(entities=entities, groups=groups, rules=rules, files=[f.shown for f in files])


def _check_channel(
    name: str, channels: Collection[str], f: _File, loc: list[str | int], out: list[Problem]
) -> None:
    if name not in channels:
        line, col = position(f.doc, loc)
        known = ", ".join(sorted(channels)) or "none are defined"
        out.append(
            Problem(
                f.shown, line, col, f"unknown channel {name!r}{did_you_mean(name, channels)} (known: {known})"
            )
        )


def _check_term(kind: str, value: str, names: list[str]) -> str | None:
    if kind == "entity":
        return None if value in names else f"unknown entity {value!r}{did_you_mean(value, names)}"
    if kind == "regex":
        try:
            compile_regex(value)
        except ValueError as exc:
            return str(exc)
        return None
    return None if fold(value) else f"phrase {value!r} is empty once normalized"


def _terms(node: Any, loc: list[str | int]) -> Iterator[tuple[str, str, list[str | int]]]:
    """Every term under a rule in the raw document: (kind, value, location)."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            if isinstance(item, str):
                yield "phrase", item, [*loc, i]
            else:
                yield from _terms(item, [*loc, i])
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        here = [*loc, key]
        if key in ("entity", "regex") and isinstance(value, str):
            yield key, value, here
        elif key == "fuzzy" and isinstance(value, str):
            yield "phrase", value, here
        elif key in ("all", "any", "none", "of", "terms", "at_least", "near"):
            yield from _terms(value, here)
