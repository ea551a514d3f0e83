"""In-place edits of the watch list and config: ``watcher rules add/remove/enable/disable``, ``feeds ...``.

Each edit is a ruamel.yaml round trip (comments, order, quotes and indentation kept), validated as a whole
before anything is written: the edited watch list is loaded with every file it includes, the edited config
with ``load_config``; a problem refuses the edit and leaves the file untouched. The write is atomic (a
temporary file in the same directory, fsync, ``os.replace``), so a running daemon's file watcher reloads
a whole file, never half of one. Edits of one directory are serialized with a lock on the directory.

Secrets are not needed to edit: a ``${NAME}`` that is not set in this shell validates as a placeholder.
"""

from __future__ import annotations

import io
import itertools
import os
import re
import tempfile
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.util import load_yaml_guess_indent

from watcher import yamlsplice
from watcher.atomicwrite import locked, write_atomic
from watcher.config import LoadedConfig, load_config
from watcher.errors import ConfigError, Problem, WatcherError
from watcher.rules import load_watchlist
from watcher.yamlsrc import did_you_mean, display_path, parse_yaml_text


@dataclass(frozen=True, slots=True)
class Edit:
    """What an edit did: the file, a one-line message, and whether anything changed."""

    path: Path
    message: str
    changed: bool = True


class LenientEnviron(Mapping[str, str]):
    """The environment, where an unset ``${NAME}`` reads as itself: validation needs no secrets."""

    def __init__(self, base: Mapping[str, str] | None = None) -> None:
        self.base = os.environ if base is None else base

    def __getitem__(self, key: str) -> str:
        return self.base[key] if key in self.base else "${" + key + "}"

    def __contains__(self, key: object) -> bool:
        return True

    def get(self, key: str, default: Any = None) -> Any:
        return self.base.get(key, default)

    def __iter__(self) -> Iterator[str]:
        return iter(self.base)

    def __len__(self) -> int:
        return len(self.base)


def load_for_edit(config: Path | None, environ: Mapping[str, str] | None = None) -> LoadedConfig:
    """The config as the editing commands see it (unset secrets allowed); refuses the embedded defaults."""
    if config is None:
        raise WatcherError(
            "no config file to edit: pass --config PATH (or set $WATCHER_CONFIG); "
            "the embedded defaults are read-only"
        )
    return load_config(config, environ=LenientEnviron(environ))


# ── rules ─────────────────────────────────────────────────────────────────────────────────


def build_rule(
    rule_id: str,
    title: str,
    *,
    any_: Collection[str] = (),
    all_: Collection[str] = (),
    entities: Collection[str] = (),
    severity: str | None = None,
    notify: Collection[str] = (),
    tags: Collection[str] = (),
    enabled: bool = True,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A rule mapping from command-line pieces: ``all`` holds the entities and phrases, ``any`` the rest."""
    rule: dict[str, Any] = {"id": rule_id, "title": title}
    if severity:
        rule["severity"] = severity
    if tags:
        rule["tags"] = list(tags)
    if notify:
        rule["notify"] = list(notify)
    if not enabled:
        rule["enabled"] = False
    terms: list[Any] = [{"entity": e} for e in entities] + list(all_)
    if terms:
        rule["all"] = terms
    if any_:
        rule["any"] = list(any_)
    rule.update(extra or {})
    return rule


def add_rule(
    watchlist: Path,
    rule: Mapping[str, Any],
    *,
    channels: Collection[str] | None = None,
    file: Path | None = None,
) -> Edit:
    """Append ``rule`` to the watch list's main file (or to ``file``, one of its includes)."""
    target = Path(file) if file is not None else Path(watchlist)
    rule_id = str(rule.get("id", ""))
    with locked(target.parent):
        f = _load(target)
        text = f.appended("rules", rule)
        _save_watchlist(watchlist, target, text, channels)
    return Edit(target, f"rule {rule_id!r} added to {display_path(target)}")


def remove_rule(watchlist: Path, rule_id: str, *, channels: Collection[str] | None = None) -> Edit:
    target, _ = _find_rule(watchlist, rule_id)
    with locked(target.parent):
        f = _load(target)
        text = f.deleted("rules", _rule_index(f.doc, rule_id, target))
        _save_watchlist(watchlist, target, text, channels)
    return Edit(target, f"rule {rule_id!r} removed from {display_path(target)}")


def set_rule_enabled(
    watchlist: Path, rule_id: str, enabled: bool, *, channels: Collection[str] | None = None
) -> Edit:
    """Set ``enabled:`` on a rule; no write when it is already in that state."""
    word = "enabled" if enabled else "disabled"
    target, effective = _find_rule(watchlist, rule_id, channels=channels)
    with locked(target.parent):
        f = _load(target)
        node = f.doc["rules"][_rule_index(f.doc, rule_id, target)]
        if node.get("enabled", effective) is enabled:
            return Edit(target, f"rule {rule_id!r} is already {word}", changed=False)
        text = f.with_key(node, "enabled", enabled, after=("title", "id"))
        _save_watchlist(watchlist, target, text, channels)
    return Edit(target, f"rule {rule_id!r} {word} in {display_path(target)}")


def _find_rule(
    watchlist: Path, rule_id: str, *, channels: Collection[str] | None = None
) -> tuple[Path, bool | None]:
    """The file that defines ``rule_id``, and whether the rule is enabled now (None if unknown)."""
    known: list[str] = []
    for path in watchlist_files(watchlist):
        rules = _load(path).doc.get("rules")
        for node in rules if isinstance(rules, list) else []:
            if isinstance(node, Mapping) and node.get("id") == rule_id:
                try:
                    effective: bool | None = (
                        load_watchlist(watchlist, channels=channels).rule(rule_id).enabled
                    )
                except (ConfigError, KeyError):
                    effective = None
                return path, effective
            if isinstance(node, Mapping) and "id" in node:
                known.append(str(node["id"]))
    raise WatcherError(f"no rule {rule_id!r} in {display_path(watchlist)}{did_you_mean(rule_id, known)}")


def _rule_index(doc: Any, rule_id: str, path: Path) -> int:
    for i, node in enumerate(doc.get("rules") or []):
        if isinstance(node, Mapping) and node.get("id") == rule_id:
            return i
    raise WatcherError(f"rule {rule_id!r} vanished from {display_path(path)} while editing it")


def watchlist_files(root: Path) -> list[Path]:
    """The watch list's main file and every file it includes (that exists), main file first."""
    out: list[Path] = []
    todo = [Path(root)]
    while todo:
        path = todo.pop(0)
        if path.resolve() in {p.resolve() for p in out} or not path.is_file():
            continue
        out.append(path)
        try:
            doc = parse_yaml_text(path.read_text(encoding="utf-8"), display_path(path))
        except (ConfigError, OSError, UnicodeDecodeError):
            continue
        includes = doc.get("include") if isinstance(doc, Mapping) else None
        if isinstance(includes, list):
            todo.extend(path.parent / i for i in includes if isinstance(i, str))
    return out


def _save_watchlist(root: Path, target: Path, text: str, channels: Collection[str] | None) -> None:
    _check_mirrored(root, target, text, lambda p: load_watchlist(p, channels=channels))
    write_atomic(target, text)


# ── feeds ─────────────────────────────────────────────────────────────────────────────────


def add_feed(config: Path, feed: Mapping[str, Any], *, environ: Mapping[str, str] | None = None) -> Edit:
    """Append a feed (name, url, and optionally interval, tags, publisher, tier) to the config."""
    with locked(config.parent):
        text = _load(config).appended("feeds", feed)
        _save_config(config, text, environ)
    return Edit(config, f"feed {feed.get('name')!r} added to {display_path(config)}")


def remove_feed(config: Path, name: str, *, environ: Mapping[str, str] | None = None) -> Edit:
    with locked(config.parent):
        f = _load(config)
        feeds = f.doc.get("feeds")
        names = [str(x.get("name")) for x in feeds or [] if isinstance(x, Mapping)]
        if name not in names:
            raise WatcherError(f"no feed {name!r} in {display_path(config)}{did_you_mean(name, names)}")
        text = f.deleted("feeds", names.index(name))
        _save_config(config, text, environ)
    return Edit(config, f"feed {name!r} removed from {display_path(config)}")


def _save_config(config: Path, text: str, environ: Mapping[str, str] | None) -> None:
    _check_mirrored(config, config, text, lambda p: load_config(p, environ=LenientEnviron(environ)))
    write_atomic(config, text)


# ── YAML round trip, validation and the atomic write ─────────────────────────────────────


@dataclass
class _Loaded:
    """One file being edited: its text, its round-trip document, and the YAML settings it was read with.

    Each edit is first tried as a line splice (watcher.yamlsplice: untouched lines stay byte for byte),
    checked by re-reading it; when the layout is one the splice does not handle, the document is
    re-emitted whole (comments and order kept, hand-wrapped flow lists re-flowed).
    """

    path: Path
    text: str
    doc: CommentedMap
    yaml: YAML

    def appended(self, key: str, value: Mapping[str, Any]) -> str:
        node = _commented(value)
        spliced = yamlsplice.append_item(self.text, self.doc, key, self._item_lines(key, node))
        _child_seq(self.doc, key).append(node)
        return self._checked(spliced)

    def deleted(self, key: str, index: int) -> str:
        spliced = yamlsplice.delete_item(self.text, self.doc, key, index)
        del self.doc[key][index]
        return self._checked(spliced)

    def with_key(self, node: CommentedMap, key: str, value: bool, *, after: tuple[str, ...]) -> str:
        spliced = yamlsplice.set_key(self.text, node, key, "true" if value else "false", after=after)
        if key in node:
            node[key] = value
        else:
            keys = list(node)
            anchor = next((k for k in after if k in keys), None)
            node.insert(keys.index(anchor) + 1 if anchor else 0, key, value)
        return self._checked(spliced)

    def _item_lines(self, key: str, node: Any) -> list[str]:
        """``node`` as the lines of one item of a block sequence, the dash at column 0."""
        lines = _dump(CommentedMap([(key, CommentedSeq([node]))]), self.yaml).splitlines(keepends=True)[1:]
        dash = lines[0].index("-") if lines else 0
        return [ln[dash:] if ln[:dash].strip() == "" else ln for ln in lines]

    def _checked(self, spliced: str | None) -> str:
        if spliced is not None:
            try:
                if _plain(YAML(typ="rt").load(spliced)) == _plain(self.doc):
                    return spliced
            except YAMLError:
                pass
        return _dump(self.doc, self.yaml)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _load(path: Path) -> _Loaded:
    shown = display_path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(Problem(shown, 0, 0, f"cannot read file: {exc.strerror or exc}")) from exc
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.width = 4096
    yaml.brace_single_entry_mapping_in_flow_sequence = True  # keep `[{entity: kim}, x]` as written
    sequence, offset = _seq_indent(text)
    yaml.indent(mapping=_mapping_indent(text), sequence=sequence, offset=offset)
    try:
        doc = yaml.load(text)
    except YAMLError:
        parse_yaml_text(text, shown)  # raises the positioned error
        raise
    if doc is None:
        doc = CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise ConfigError(Problem(shown, 1, 1, "the file must be a mapping of keys to edit it"))
    return _Loaded(path, text, doc, yaml)


def _seq_indent(text: str) -> tuple[int, int]:
    try:
        _, indent, offset = load_yaml_guess_indent(text)
    except YAMLError:
        return 2, 0
    return (indent or 2), (offset or 0)


def _mapping_indent(text: str) -> int:
    """How far the file indents a nested mapping (2 when it has none)."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    for here, below in itertools.pairwise(lines):
        stripped = here.split(" #", 1)[0].rstrip()
        if not stripped.endswith(":") or stripped.lstrip().startswith("- "):
            continue
        indent = len(here) - len(here.lstrip())
        inner = len(below) - len(below.lstrip())
        if inner > indent and not below.lstrip().startswith("-"):
            return inner - indent
    return 2


def _dump(doc: Any, yaml: YAML) -> str:
    out = io.StringIO()
    yaml.dump(doc, out)
    return out.getvalue()


def _child_seq(doc: CommentedMap, key: str) -> CommentedSeq:
    seq = doc.get(key)
    if seq is None:
        seq = CommentedSeq()
        doc[key] = seq
    if not isinstance(seq, CommentedSeq):
        raise WatcherError(f"`{key}:` is not a list in this file; fix it by hand first")
    return seq


def _commented(value: Any) -> Any:
    """Plain dicts and lists as ruamel nodes; short lists of scalars in flow style (``[a, b]``)."""
    if isinstance(value, Mapping):
        m = CommentedMap()
        for k, v in value.items():
            m[k] = _commented(v)
        return m
    if isinstance(value, list | tuple):
        seq = CommentedSeq(_commented(v) for v in value)
        if (
            all(isinstance(v, str | int | float | bool) for v in value)
            and sum(len(str(v)) for v in value) < 60
        ):
            seq.fa.set_flow_style()
        return seq
    return value


def _check_mirrored(root: Path, target: Path, text: str, load: Callable[[Path], object]) -> None:
    """Load ``root`` as it would be with ``target`` holding ``text``, from a copy in a temporary directory.

    Every file of the watch list is copied with its relative layout, so includes resolve as they will;
    problems are reported against the real paths. Raises ConfigError; writes nothing outside the copy.
    """
    files = [p.resolve() for p in watchlist_files(root)] if root != target else []
    real_target = target.resolve()
    files = list(dict.fromkeys([real_target, *files]))
    base = Path(os.path.commonpath([str(p.parent) for p in files]))
    with tempfile.TemporaryDirectory(prefix="watcher-edit-") as tmp:
        for f in files:
            copy = Path(tmp) / f.relative_to(base)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_text(text if f == real_target else f.read_text(encoding="utf-8"), encoding="utf-8")
        try:
            load(Path(tmp) / root.resolve().relative_to(base))
        except ConfigError as exc:
            in_copy = re.compile(re.escape(display_path(tmp)) + r"/([^\s:]+)")

            def real(text: str) -> str:
                return in_copy.sub(lambda m: display_path(base / m.group(1)), text)

            problems = [Problem(real(p.file), p.line, p.column, real(p.message)) for p in exc.problems]
            raise ConfigError(problems) from None
