"""YAML files that remember where each value came from.

Config and watch-list files are read with ruamel.yaml's round-trip loader, which keeps the line and
column of every key and value. Pydantic validates the plain data; its error locations are mapped back
to ``file:line:column`` through the loaded document, and unknown keys get a "did you mean" hint.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from rapidfuzz import process as fuzz_process
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import MaxDepthExceededError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from watcher.errors import ConfigError, Problem

M = TypeVar("M", bound=BaseModel)

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_DEPTH = 100  # nesting levels of a YAML document (a rule's conditions nest a dozen at most)
MAX_ALIAS_VALUES = 10_000  # values that aliases may add to a document beyond the ones written


def display_path(path: Path | str) -> str:
    """A path as the user would type it: relative to the working directory when below it."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p)


def read_yaml(path: Path | str) -> Any:
    """Load a YAML file with positions kept. Raises ConfigError naming file:line:column."""
    shown = display_path(path)
    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise ConfigError(Problem(shown, 0, 0, f"cannot read file: {exc.strerror or exc}")) from exc
    if size > MAX_FILE_BYTES:
        raise ConfigError(Problem(shown, 0, 0, f"file is {size} bytes; the limit is {MAX_FILE_BYTES}"))
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(Problem(shown, 1, 1, f"not UTF-8 text ({exc.reason} at byte {exc.start})")) from exc
    except OSError as exc:
        raise ConfigError(Problem(shown, 0, 0, f"cannot read file: {exc.strerror or exc}")) from exc
    return parse_yaml_text(text, shown)


def parse_yaml_text(text: str, shown: str) -> Any:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    yaml.composer.warn_double_anchors = False  # YAML allows it (an alias means the latest anchor)
    yaml.max_depth = MAX_DEPTH  # deeper nesting would exhaust the stack (RecursionError) instead
    try:
        doc = yaml.load(text)
        _check_aliases(doc, shown)
        return doc
    except MaxDepthExceededError as exc:
        mark = exc.problem_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        raise ConfigError(Problem(shown, line, col, f"nested deeper than {MAX_DEPTH} levels")) from exc
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        col = mark.column + 1 if mark is not None else 0
        what = " ".join(part for part in (exc.context, exc.problem) if part)
        raise ConfigError(Problem(shown, line, col, f"invalid YAML: {what}")) from exc
    except YAMLError as exc:
        raise ConfigError(Problem(shown, 1, 1, f"invalid YAML: {exc}")) from exc


def _check_aliases(doc: Any, shown: str) -> None:
    """Refuse a document whose aliases multiply it (a "billion laughs" of nested anchors): aliases
    may repeat values, but not add more than ``max(MAX_ALIAS_VALUES, values written)`` more."""
    sizes: dict[int, int] = {}
    reused: list[Any] = []

    def size(node: Any) -> int:
        if not isinstance(node, dict | list):
            return 1
        known = sizes.get(id(node))
        if known is not None:
            reused.append(node)
            return known
        sizes[id(node)] = 1  # a node that contains itself counts once
        children = node.values() if isinstance(node, dict) else node
        sizes[id(node)] = total = 1 + sum(size(child) for child in children)
        return total

    expanded = size(doc)
    written = _written(doc, set())
    if expanded - written > max(MAX_ALIAS_VALUES, written):
        lc = getattr(max(reused, key=lambda n: sizes[id(n)]), "lc", None)
        line, col = (lc.line + 1, lc.col + 1) if lc is not None else (1, 1)
        raise ConfigError(
            Problem(
                shown,
                line,
                col,
                f"aliases expand this file to {expanded:,} values (written: {written:,}); "
                "an anchor used this way is refused",
            )
        )


def _written(node: Any, seen: set[int]) -> int:
    """Values as written: each container once, however often an alias repeats it."""
    if not isinstance(node, dict | list):
        return 1
    if id(node) in seen:
        return 0
    seen.add(id(node))
    children = node.values() if isinstance(node, dict) else node
    return 1 + sum(_written(child, seen) for child in children)


def position(doc: Any, loc: Sequence[str | int], *, key: bool = False) -> tuple[int, int]:
    """1-based (line, column) of the value at ``loc`` (or of its key when ``key``) in a loaded document.

    Walks as deep as the document goes and returns the deepest position found.
    """
    line, col = 1, 1
    node = doc
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if isinstance(node, CommentedMap) and part in node:
            kl, kc = node.lc.key(part)
            vl, vc = node.lc.value(part)
            line, col = (kl, kc) if (key and last) else (vl, vc)
            line, col = line + 1, col + 1
            node = node[part]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            il, ic = node.lc.item(part)
            line, col = il + 1, ic + 1
            node = node[part]
        else:
            if isinstance(node, CommentedMap | CommentedSeq) and (line, col) == (1, 1):
                line, col = node.lc.line + 1, node.lc.col + 1
            break
    return line, col


def did_you_mean(word: str, choices: Iterable[str], *, cutoff: float = 60) -> str:
    """`` (did you mean 'x'?)`` when a close choice exists, else an empty string."""
    options = [c for c in choices if c]
    if not options:
        return ""
    best = fuzz_process.extractOne(word, options, score_cutoff=cutoff)
    return f" (did you mean {best[0]!r}?)" if best else ""


def _known_keys(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """Field names (and aliases) allowed at ``loc`` in ``model``, following nested models."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            # dict[str, Model] values or list items: step into the annotation's model argument
            current = _inner_model(current)
            fields = getattr(current, "model_fields", None) if current else None
            if not fields or part not in fields:
                return []
        current = _inner_model(fields[part].annotation)
    if current is None or not hasattr(current, "model_fields"):
        return []
    names = []
    for name, field in current.model_fields.items():
        names.append(field.alias or name)
    return names


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def problems_from_validation(
    exc: ValidationError, doc: Any, shown: str, model: type[BaseModel]
) -> list[Problem]:
    """Turn a pydantic ValidationError into positioned, human-worded problems."""
    problems: list[Problem] = []
    for err in exc.errors(include_url=False):
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-"))]
        where = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            line, col = position(doc, loc, key=True)
            name = str(loc[-1]) if loc else "?"
            hint = did_you_mean(name, _known_keys(model, loc[:-1]))
            message = f"unknown key {name!r}{hint}"
        elif err["type"] == "missing":
            line, col = position(doc, loc[:-1])
            message = (
                f"missing required key {str(loc[-1])!r} in {'.'.join(map(str, loc[:-1])) or 'the top level'}"
            )
        else:
            line, col = position(doc, loc)
            msg = err["msg"].removeprefix("Value error, ")
            message = f"{where}: {msg}"
        problems.append(Problem(shown, line, col, message))
    problems.sort(key=lambda p: (p.line, p.column))
    return problems


def validate(model: type[M], doc: Any, shown: str, *, context: dict[str, Any] | None = None) -> M:
    """Validate a loaded document against ``model``; raise ConfigError with every problem positioned."""
    if doc is None:
        doc = CommentedMap()
    try:
        return model.model_validate(doc, context=context)
    except ValidationError as exc:
        raise ConfigError(problems_from_validation(exc, doc, shown, model)) from exc
