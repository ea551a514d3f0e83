"""Logging: one line per event, readable in a terminal and in journald, or JSON; secrets redacted.

    setup_logging("info", "text")     # 2025-09-03T09:07:04 WARNING watcher.pipeline: feed kcna: HTTP 503 ...
    setup_logging("info", "json")     # {"time": "...", "level": "warning", "logger": "...", "message": "..."}

Under systemd (``$JOURNAL_STREAM`` names our stderr) text lines drop the timestamp (journald adds its own)
and start with a ``<N>`` syslog priority, so ``journalctl -p warning`` filters by level.

Every handler installed here carries ``redactor``: apprise URLs in any message show as apprise's
``url(privacy=True)`` does (``slack://T...2/B...3/x...Z``, ``mailtos://user:****@host``), and each secret
registered with ``redactor.set_secrets()`` (the expanded channel URLs and their ``${ENV}`` values) shows
as ``****``. Control characters in messages are escaped, so a feed's text cannot forge a log line.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import IO, Any, Literal

from pydantic import SecretStr

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
QUIET_LOGGERS = ("httpx", "httpcore", "apscheduler", "watchfiles")

_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]{1,20})://([^\s'\"<>()\[\]]+)")
_ENV_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
_SECRET_KEYS = re.compile(
    r"(?i)^(?:.*token|.*secret|.*password|pass|pw|pwd|.*key|auth|sig|signature|apikey|webhook|code)$"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\u2028\u2029]|\n")
_WEB = frozenset({"http", "https"})
_STD_ATTRS = frozenset(vars(logging.LogRecord("x", 0, "", 0, "", None, None))) | {"message", "asctime"}


def _mask(part: str) -> str:
    """apprise's privacy style: the first and last character of a secret-looking part."""
    if not part or _ENV_REF.fullmatch(part) or len(part) < 3:
        return part
    return f"{part[0]}...{part[-1]}"


def _looks_like_host(part: str) -> bool:
    return "." in part or part == "localhost" or part.startswith("[")


def redact_url(url: str) -> str:
    """One URL with its secrets hidden: passwords, tokens in a service URL's path, secret query values."""
    m = _URL.fullmatch(url)
    if m is None:
        return url
    scheme, rest = m.group(1), m.group(2)
    web = scheme.lower() in _WEB
    rest, hash_, fragment = rest.partition("#")
    rest, qmark, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    userinfo, at, hostport = authority.rpartition("@")
    if at:
        user, colon, _password = userinfo.partition(":")
        userinfo = f"{user}:****" if colon else (user if web else _mask(user))
    host, colon, port = hostport.partition(":")
    if not web and not _looks_like_host(host):
        host = _mask(host)
    if not port.isdigit():  # tgram://123456789:AAH.../ : a token, not a port
        port = _mask(port)
    if not web:
        path = "/".join(_mask(seg) for seg in path.split("/"))
    if query:
        pairs = []
        for pair in query.split("&"):
            key, eq, value = pair.partition("=")
            pairs.append(f"{key}=****" if eq and _SECRET_KEYS.match(key.lstrip("+-:")) and value else pair)
        query = "&".join(pairs)
    auth = f"{userinfo}@" if at else ""
    return f"{scheme}://{auth}{host}{colon}{port}{slash}{path}{qmark}{query}{hash_}{fragment}"


class Redactor(logging.Filter):
    """A handler filter: known secrets become ``****``, URLs are redacted, control characters escaped."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: tuple[str, ...] = ()

    def set_secrets(self, secrets: Iterable[str]) -> None:
        """Replace the set of literal secrets (longest first, so a URL goes before its token)."""
        self._secrets = tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True))

    def redact(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "****")
        return _URL.sub(lambda m: _redact_match(m.group(0)), text)

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_watcher_redacted", False):
            return True
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a bad format string: show it rather than lose the line
            message = f"{record.msg!r} {record.args!r}"
        record.msg = _escape(self.redact(message))
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        setattr(record, "_watcher_redacted", True)  # noqa: B010 - LogRecord takes any attribute
        return True


def _redact_match(url: str) -> str:
    trail = ""
    while url and url[-1] in ".,;:!":
        url, trail = url[:-1], url[-1] + trail
    return redact_url(url) + trail


def _escape(text: str) -> str:
    return _CONTROL.sub(lambda m: "\\n" if m.group(0) == "\n" else f"\\x{ord(m.group(0)):02x}", text)


redactor = Redactor()


def channel_secrets(channels: Mapping[str, Any]) -> set[str]:
    """Each channel's expanded URL and every value that replaced a ``${NAME}`` in it.

    ``channels`` maps names to watcher.config.ChannelConfig (``url`` a SecretStr, ``display_url`` the
    URL as written); the values come from aligning the two, so no environment is read here.
    """
    out: set[str] = set()
    for channel in channels.values():
        url = channel.url.get_secret_value() if isinstance(channel.url, SecretStr) else str(channel.url)
        out.add(url)
        shown = str(getattr(channel, "display_url", "") or "")
        if not _ENV_REF.search(shown):
            continue
        pattern = "".join(
            "(.*?)" if _ENV_REF.fullmatch(piece) else re.escape(piece)
            for piece in re.split(f"({_ENV_REF.pattern})", shown)
        )
        m = re.fullmatch(pattern, url, re.DOTALL)
        if m:
            out.update(v for v in m.groups() if v)
    return out


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message``, or ``<priority>logger: message`` for journald."""

    def __init__(self, *, journal: bool) -> None:
        self.journal = journal
        fmt = "%(name)s: %(message)s" if journal else "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
        super().__init__(fmt, datefmt="%Y-%m-%dT%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        if not self.journal:
            return text
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in text.split("\n"))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, exception, and any ``extra=`` fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            out["exception"] = record.exc_text
        for key, value in vars(record).items():
            if key not in _STD_ATTRS and not key.startswith("_"):
                out[key] = value if isinstance(value, str | int | float | bool | None) else str(value)
        return json.dumps(out, ensure_ascii=False)


def syslog_priority(levelno: int) -> int:
    """Python level → syslog priority (3 err, 4 warning, 6 info, 7 debug; 2 crit)."""
    if levelno >= logging.CRITICAL:
        return 2
    if levelno >= logging.ERROR:
        return 3
    if levelno >= logging.WARNING:
        return 4
    if levelno >= logging.INFO:
        return 6
    return 7


def under_journald(stream: IO[str], environ: Mapping[str, str] | None = None) -> bool:
    """True when ``$JOURNAL_STREAM`` (``device:inode``) is the file behind ``stream``."""
    env = os.environ if environ is None else environ
    value = env.get("JOURNAL_STREAM", "")
    dev, _, ino = value.partition(":")
    if not (dev.isdigit() and ino.isdigit()):
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    return (st.st_dev, st.st_ino) == (int(dev), int(ino))


def setup_logging(
    level: str = "info",
    fmt: LogFormat = "text",
    *,
    stream: IO[str] | None = None,
    journal: bool | None = None,
    environ: Mapping[str, str] | None = None,
) -> logging.Handler:
    """Install one handler on the root logger (replacing one installed earlier here) and return it."""
    if fmt not in LOG_FORMATS:
        raise ValueError(f"log format {fmt!r}: use one of {', '.join(LOG_FORMATS)}")
    levelno = parse_level(level)
    out = stream if stream is not None else sys.stderr
    if journal is None:
        journal = under_journald(out, environ)
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter(journal=journal))
    handler.addFilter(redactor)
    handler._watcher = True  # type: ignore[attr-defined]
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_watcher", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(levelno)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler


def parse_level(level: str) -> int:
    """``debug``, ``info``, ``warning``, ``error`` (any case) → a logging level."""
    value = logging.getLevelName(level.upper())
    if not isinstance(value, int):
        raise ValueError(f"log level {level!r}: use debug, info, warning or error")
    return value
