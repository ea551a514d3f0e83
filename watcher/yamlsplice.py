"""Line-level edits of a YAML text, placed with ruamel.yaml's positions, so the rest stays byte for byte.

A ruamel round trip keeps comments and order but re-flows what it re-emits (a flow list wrapped by hand
comes back on one line). These edits touch only the lines of the item they add, remove or change:

    append_item(text, doc, "rules", new_item_lines)   # after the last item of the top-level sequence
    delete_item(text, doc, "rules", 3)                # the item's lines; comments above it stay
    set_key(text, node, "enabled", "false", after="title")

Each returns the new text, or None when the layout is not one it handles (a flow-style sequence or
mapping, say); the caller then falls back to a round trip.
"""

from __future__ import annotations

import re
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

_TOKEN = re.compile(r"[^\s#,}\]]+")


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines


def _is_filler(line: str) -> bool:
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _block_seq(doc: Any, key: str) -> CommentedSeq | None:
    seq = doc.get(key) if isinstance(doc, CommentedMap) else None
    if not isinstance(seq, CommentedSeq) or not seq or seq.fa.flow_style():
        return None
    return seq


def _block_end(lines: list[str], doc: CommentedMap, key: str) -> int:
    """Index of the first line after ``key``'s block: the next top-level key, else the end."""
    start = doc.lc.key(key)[0] + 1
    for i in range(start, len(lines)):
        line = lines[i]
        if line[:1] not in (" ", "\t", "\n", "#", "-", "\r") and line.strip():
            return i
    return len(lines)


def _back_over_filler(lines: list[str], end: int, floor: int) -> int:
    while end > floor and _is_filler(lines[end - 1]):
        end -= 1
    return end


def _dash_line(seq: CommentedSeq, index: int, lines: list[str]) -> int | None:
    line, col = seq.lc.item(index)
    if "-" in lines[line][:col]:
        return int(line)
    return None  # the item's dash sits on an earlier line (an unusual layout)


def append_item(text: str, doc: Any, key: str, item_lines: list[str]) -> str | None:
    """Add ``item_lines`` (``- ...`` lines, dash at column 0) after the last item of ``doc[key]``."""
    lines = _lines(text)
    seq = _block_seq(doc, key)
    if seq is None:
        if isinstance(doc, CommentedMap) and key not in doc:
            sep = "" if not lines or lines[-1].strip() == "" else "\n"
            return "".join(lines) + sep + f"{key}:\n" + "".join(item_lines)
        return None
    first = _dash_line(seq, 0, lines)
    if first is None:
        return None
    indent = lines[first].index("-")
    end = _back_over_filler(lines, _block_end(lines, doc, key), first + 1)
    new = [(" " * indent + ln) if ln.strip() else ln for ln in item_lines]
    return "".join(lines[:end] + new + lines[end:])


def delete_item(text: str, doc: Any, key: str, index: int) -> str | None:
    """Remove item ``index`` of ``doc[key]``. Comment lines above it stay (they may head a section)."""
    lines = _lines(text)
    seq = _block_seq(doc, key)
    if seq is None:
        return None
    start = _dash_line(seq, index, lines)
    if start is None:
        return None
    if index + 1 < len(seq):
        nxt = _dash_line(seq, index + 1, lines)
        if nxt is None:
            return None
        end = _comments_above(lines, nxt)
    else:
        end = _back_over_filler(lines, _block_end(lines, doc, key), start + 1)
    return "".join(lines[:start] + lines[end:])


def _comments_above(lines: list[str], line: int) -> int:
    """The first of the comment lines directly above ``line`` (they belong to that item)."""
    while line > 0 and lines[line - 1].strip().startswith("#"):
        line -= 1
    return line


def set_key(text: str, node: Any, key: str, value: str, *, after: tuple[str, ...] = ()) -> str | None:
    """Set ``key: value`` in a block mapping: in place if present, else on a new line after ``after``."""
    if not isinstance(node, CommentedMap) or node.fa.flow_style():
        return None
    lines = _lines(text)
    if key in node:
        line, col = node.lc.value(key)
        m = _TOKEN.match(lines[line], col)
        if m is None:
            return None
        lines[line] = lines[line][: m.start()] + value + lines[line][m.end() :]
        return "".join(lines)
    keys = list(node)
    anchor = next((k for k in after if k in node), None)
    following = keys[keys.index(anchor) + 1 :] if anchor else keys
    if not following:
        return None  # no key to insert before: leave it to the round trip
    line, col = node.lc.key(following[0])
    if lines[line][:col].strip():
        return None  # that key shares its line with a dash or another key
    return "".join([*lines[:line], " " * col + f"{key}: {value}\n", *lines[line:]])
