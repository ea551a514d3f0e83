"""The naive loop's rules: one regular expression per watch-list rule.

Each rule becomes an alternation of every phrase, entity alias, fuzzy phrase and regex its condition
mentions (``none`` branches included: a naive script does not know better), matched case-insensitively
on word boundaries. Taken from config/watchlist.yaml when it exists, else from a fixed list.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
WATCHLIST = ROOT / "config" / "watchlist.yaml"

FIXED = {
    "trio-together": ["Xi Jinping", "Putin", "Kim Jong Un", "parade"],
    "bilateral-meeting": ["talks", "summit", "met with", "meeting"],
    "joint-statement": ["joint statement", "joint declaration", "communique"],
    "weapons-display": ["missile", "ICBM", "hypersonic", "drone", "laser weapon"],
    "washington-reaction": ["White House", "Trump", "State Department", "Pentagon"],
    "seoul-reaction": ["Seoul", "South Korea", "Lee Jae-myung"],
    "tokyo-reaction": ["Tokyo", "Japanese government", "Ishiba"],
    "signed-agreement": ["signed", "memorandum", "agreement", "treaty"],
    "military-posture": ["troops", "deployment", "drills", "exercises"],
    "sanctions-evasion": ["sanctions", "oil tanker", "ship-to-ship"],
    "demarche": ["summoned", "ambassador", "protest"],
    "cooperation-readout": ["cooperation", "readout", "strategic partnership"],
}


def _load(path: Path, seen: set[Path]) -> list[dict[str, Any]]:
    """The documents of ``path`` and of the files it includes."""
    if path in seen or not path.exists():
        return []
    seen.add(path)
    doc = YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}
    docs = [doc]
    for inc in doc.get("include", []) or []:
        docs += _load((path.parent / str(inc)).resolve(), seen)
    return docs


def _terms(node: Any, entities: dict[str, list[str]], groups: dict[str, list[str]]) -> list[tuple[str, bool]]:
    """(text, is_regex) for every term under ``node``."""
    out: list[tuple[str, bool]] = []
    if isinstance(node, str):
        out.append((node, False))
    elif isinstance(node, list):
        for x in node:
            out += _terms(x, entities, groups)
    elif isinstance(node, dict):
        if "entity" in node:
            name = str(node["entity"])
            for member in groups.get(name, [name]):
                out += [(a, False) for a in entities.get(member, [])]
        elif "fuzzy" in node:
            out.append((str(node["fuzzy"]), False))
        elif "regex" in node:
            out.append((str(node["regex"]), True))
        else:
            for key in ("all", "any", "none", "of", "terms"):
                if key in node:
                    out += _terms(node[key], entities, groups)
    return out


def naive_rules(path: Path = WATCHLIST) -> dict[str, str]:
    """Rule id → one regex, from the watch list at ``path`` (or the fixed list when it is absent)."""
    docs = _load(path.resolve(), set())
    if not docs:
        return {rid: _alternation([(t, False) for t in terms]) for rid, terms in FIXED.items()}
    entities: dict[str, list[str]] = {}
    groups: dict[str, list[str]] = {}
    rules: dict[str, str] = {}
    for doc in docs:
        for name, spec in (doc.get("entities") or {}).items():
            entities[str(name)] = [str(a) for a in (spec or {}).get("aliases", [])]
        for name, members in (doc.get("groups") or {}).items():
            groups[str(name)] = [str(m) for m in members]
    for doc in docs:
        for rule in doc.get("rules") or []:
            terms = _terms({k: v for k, v in rule.items() if k in ("all", "any", "none")}, entities, groups)
            if terms:
                rules[str(rule["id"])] = _alternation(terms)
    return rules


def _alternation(terms: list[tuple[str, bool]]) -> str:
    parts = sorted({t if rx else re.escape(t) for t, rx in terms}, key=len, reverse=True)
    return r"(?<!\w)(?:" + "|".join(parts) + r")(?!\w)"


if __name__ == "__main__":
    import json

    print(json.dumps(naive_rules(), ensure_ascii=False, indent=1))
