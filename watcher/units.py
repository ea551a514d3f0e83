"""Parse human-written durations (``90s``, ``5m``, ``1h``, ``2d``, ``1h30m``) and sizes (``10MB``)."""

from __future__ import annotations

import re

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)", re.IGNORECASE)
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)?\s*$", re.IGNORECASE)
_SIZE_FACTOR = {
    "b": 1,
    "kb": 1000,
    "kib": 1024,
    "mb": 1000**2,
    "mib": 1024**2,
    "gb": 1000**3,
    "gib": 1024**3,
}


def parse_duration(value: str | int | float) -> float:
    """Return seconds. Numbers are seconds; strings are one or more ``<number><unit>`` parts."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string such as '90s', '5m', '1h'")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    text = value.strip()
    if not text:
        raise ValueError("empty duration: write it as '90s', '5m', '1h' or '2d'")
    pos = 0
    total = 0.0
    for m in _DURATION_PART.finditer(text):
        if text[pos : m.start()].strip():
            break
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()]
        pos = m.end()
    if pos == 0 or text[pos:].strip():
        raise ValueError(f"cannot read duration {value!r}: write it as '90s', '5m', '1h', '2d' or '1h30m'")
    return total


def format_duration(seconds: float) -> str:
    """Inverse of :func:`parse_duration` for display: ``3660`` -> ``1h1m``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    out = []
    rest = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out) or "0s"


def parse_size(value: str | int) -> int:
    """Return bytes from ``10MB``, ``512KiB`` or a plain number of bytes."""
    if isinstance(value, bool):
        raise ValueError("a size is a number of bytes or a string such as '10MB'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    m = _SIZE.match(value)
    if not m:
        raise ValueError(f"cannot read size {value!r}: write it as '10MB', '512KiB' or a number of bytes")
    return int(float(m.group(1)) * _SIZE_FACTOR[(m.group(2) or "b").lower()])
