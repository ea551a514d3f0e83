"""Alert and digest messages per channel kind, from Jinja2 templates in a sandbox, feed text escaped.

Kinds: ``slack`` (CommonMark that apprise turns into Slack mrkdwn: compact, linked), ``html``
(email: apprise adds the plain-text part from it), ``markdown`` (other Markdown services) and
``text``. ``kind_for(channel)`` picks one from the channel's ``format`` and URL scheme.

Feed text cannot act: every printed value is escaped for the kind (HTML entities; Markdown
punctuation that would make links, code or headings), newlines are folded, mentions are broken
(``@channel`` → ``@⁠channel``, ``<!here>`` never survives) and bare URLs and domains are defused with
an invisible word joiner, so the only links in a message are the items' own, made by ``link()``.

Templates: ``alert.<kind>.j2``, ``digest.<kind>.j2`` and ``title.j2`` ship in ``watcher/templates``;
a file of the same name in the user's template directory replaces one. User templates run in an
immutable sandbox; one that fails falls back to the shipped template (and ``Renderer.check`` says so).

Alert payload (``alerts.payload``, built by the pipeline)::

    {"kind": "open" | "update",
     "rule": {"id", "title", "severity", "description"},
     "story": {"id", "title", "first_seen", "last_seen", "item_count"},
     "items": [{"title", "link", "feed", "publisher", "published", "tier"}],  # open: first items;
                                                                             # update: new since
     "evidence": [{"term", "kind", "field", "text"}],
     "sources": [publisher, ...],             # independent publishers, wire copy counted once
     "copies": [[publisher, copied_from], ...],
     "primary": [publisher, ...],             # primary-tier sources among them
     "update": {"threshold": int, "sources": int}}   # updates only

Digest payload::

    {"kind": "digest", "period": {"start", "end"},
     "rules": [{"id", "title", "severity", "stories": [{"id", "title", "first_seen", "last_seen",
                "sources": [...], "entries": [{"title", "link", "publisher", "published"}]}]}]}

In templates a mapping's keys read as attributes (``rule.title``), except where a key is also a dict
method: no payload mapping below the top level has a key named ``items``, ``keys`` or ``values``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup, escape

from watcher.config import ChannelConfig

log = logging.getLogger(__name__)

Kind = Literal["slack", "html", "markdown", "text"]
BodyFormat = Literal["text", "markdown", "html"]
KINDS: tuple[Kind, ...] = ("slack", "html", "markdown", "text")
BODY_FORMAT: dict[Kind, BodyFormat] = {
    "slack": "markdown",
    "html": "html",
    "markdown": "markdown",
    "text": "text",
}
_KIND_NAMES: dict[str, Kind] = {k: k for k in KINDS}
EMAIL_SCHEMES = frozenset({"mailto", "mailtos", "email"})

_JOINER = "\u2060"  # WORD JOINER: invisible, breaks auto-linking and mentions
_MENTION = re.compile(r"([@＠])(?=\w|[!#])")
_SCHEME = re.compile(r"(?i)\b([a-z][a-z0-9+.-]{1,15}):(?=//)")
_WWW = re.compile(r"(?i)\bwww\.")
_DOMAIN_DOT = re.compile(r"(?<=[A-Za-z0-9])\.(?=[a-z]{2,}\b)")
_SPACE = re.compile(r"\s+")
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#!|~])")
_SLACK_SPECIAL = re.compile(r"([\\\[\]()<>#!])")


class Safe(str):
    """Text already fit for its kind (made by ``link()``): printed as it is."""

    __slots__ = ()


def defuse(text: str) -> str:
    """Feed text on one line, with mentions, URL schemes and domain names made inert."""
    text = _SPACE.sub(" ", text)
    text = _MENTION.sub(lambda m: m.group(1) + _JOINER, text)
    text = _SCHEME.sub(lambda m: m.group(1) + ":" + _JOINER, text)
    text = _WWW.sub(lambda m: m.group(0)[:3] + _JOINER + ".", text)
    return _DOMAIN_DOT.sub(_JOINER + ".", text)


def _trusted(kind: Kind, text: str) -> Safe | Markup:
    """Mark text built here from escaped parts as final: Markup for HTML, Safe for the others."""
    return Markup(text) if kind == "html" else Safe(text)  # noqa: S704 - every part is escaped first


def escape_for(kind: Kind, value: object) -> str:
    """``value`` as feed text printed into a message of ``kind``."""
    if isinstance(value, Safe | Markup):
        return str(value)
    text = defuse("" if value is None else str(value))
    if kind == "slack":
        return _SLACK_SPECIAL.sub(r"\\\1", text.replace("`", "ˋ"))
    if kind == "markdown":
        return _MD_SPECIAL.sub(r"\\\1", text)
    if kind == "html":
        return str(escape(text))
    return text


def safe_url(url: object) -> str | None:
    """An http(s) URL with the characters that could end a link percent-encoded; None otherwise."""
    text = str(url or "").strip()
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return quote(text, safe=":/?#@!$&'*+,;=%~-._")


def _link_for(kind: Kind) -> Callable[[object, object], Safe | Markup]:
    def link(url: object, label: object = None) -> Safe | Markup:
        """The item's own link around ``label`` (the label alone when the URL is not http/https)."""
        shown = escape_for(kind, label if label not in (None, "") else url)
        target = safe_url(url)
        if target is None:
            return _trusted(kind, shown)
        if kind == "html":
            return _trusted(kind, f'<a href="{escape(target)}">{shown}</a>')
        if kind in ("slack", "markdown"):
            return _trusted(kind, f"[{shown}]({target})")
        return _trusted(kind, f"{shown}\n  {target}")

    return link


def _url_for(kind: Kind) -> Callable[[object], Safe | Markup]:
    def url(value: object) -> Safe | Markup:
        """The item's own URL as visible text (empty when it is not http/https)."""
        target = safe_url(value) or ""
        return _trusted(kind, str(escape(target)) if kind == "html" else target)

    return url


def _join_for(kind: Kind) -> Callable[[Iterable[object], str], Safe | Markup]:
    def join(values: Iterable[object], sep: str = ", ") -> Safe | Markup:
        return _trusted(kind, sep.join(escape_for(kind, v) for v in values))

    return join


def _finalize_for(kind: Kind) -> Callable[[object], object]:
    def finalize(value: object) -> object:
        if isinstance(value, Safe | Markup):
            return value
        text = escape_for(kind, value)
        return _trusted(kind, text) if kind == "html" else text

    return finalize


def when(value: object) -> str:
    """``2025-09-03T09:07:04+00:00`` → ``2025-09-03 09:07 UTC``."""
    text = str(value or "")
    return f"{text[:16].replace('T', ' ')} UTC" if len(text) >= 16 else text


def kind_for(channel: ChannelConfig) -> Kind:
    """The message kind a channel gets: its ``format``, else what its URL scheme supports best."""
    scheme = channel.scheme
    if channel.format == "text":
        return "text"
    if channel.format == "html":
        return "html"
    if channel.format == "markdown" or scheme == "slack":
        return "slack" if scheme == "slack" else "markdown"
    return "html" if scheme in EMAIL_SCHEMES else "text"


@dataclass(frozen=True, slots=True)
class Message:
    title: str
    body: str
    body_format: BodyFormat


def default_template_dir() -> Path:
    return Path(str(resources.files("watcher") / "templates"))


def user_template_dir(config_path: Path | None) -> Path | None:
    """Where a user's templates live: ``templates/`` next to the config file, when it exists."""
    if config_path is None:
        return None
    folder = config_path.parent / "templates"
    return folder if folder.is_dir() else None


class Renderer:
    """Renders payloads with the shipped templates, or the user's where ``template_dir`` has them."""

    def __init__(self, template_dir: Path | None = None) -> None:
        self.template_dir = template_dir
        self._envs: dict[tuple[Kind, bool], jinja2.Environment] = {}
        self._warned: set[str] = set()

    def _env(self, kind: Kind, *, user: bool) -> jinja2.Environment:
        key = (kind, user)
        env = self._envs.get(key)
        if env is None:
            dirs = [default_template_dir()]
            if user and self.template_dir is not None:
                dirs.insert(0, self.template_dir)
            env = ImmutableSandboxedEnvironment(
                loader=jinja2.FileSystemLoader([str(d) for d in dirs]),
                autoescape=kind == "html",
                finalize=_finalize_for(kind),
                trim_blocks=True,
                lstrip_blocks=True,
                keep_trailing_newline=False,
                undefined=jinja2.ChainableUndefined,
            )
            env.globals.update(link=_link_for(kind), url=_url_for(kind), when=when)
            env.filters.update(join=_join_for(kind), when=when)
            self._envs[key] = env
        return env

    def _render(self, name: str, kind: Kind, context: dict[str, Any]) -> str:
        if self.template_dir is not None and (self.template_dir / name).is_file():
            try:
                return self._env(kind, user=True).get_template(name).render(context)
            except Exception as exc:  # a user's template must never cost an alert
                if name not in self._warned:
                    self._warned.add(name)
                    log.warning(
                        "template %s failed (%s: %s): using the shipped one", name, type(exc).__name__, exc
                    )
        return self._env(kind, user=False).get_template(name).render(context)

    def render(self, payload: dict[str, Any], *, kind: Kind, key: str) -> Message:
        """The message for one alert or digest payload (``payload["kind"]``: open, update, digest)."""
        what = "digest" if payload.get("kind") == "digest" else "alert"
        context = {**payload, "key": key, "message_kind": kind}
        if what == "digest":
            context["story_count"] = sum(len(r.get("stories", ())) for r in payload.get("rules", ()))
        title = self._render("title.j2", "text", context).strip()
        body = self._render(f"{what}.{kind}.j2", kind, context).strip() + "\n"
        return Message(title=_SPACE.sub(" ", title)[:250], body=body, body_format=BODY_FORMAT[kind])

    def check(self, samples: Iterable[dict[str, Any]] = ()) -> list[str]:
        """Problems with the user's templates: each is compiled and rendered with ``samples``
        (default ``SAMPLES``: an open alert, an update and a digest)."""
        samples = list(samples) or SAMPLES
        if self.template_dir is None:
            return []
        problems: list[str] = []
        for path in sorted(self.template_dir.glob("*.j2")):
            kind = path.name.split(".")[1] if path.name.count(".") == 2 else "text"
            env = self._env(_KIND_NAMES.get(kind, "text"), user=True)
            digest = path.name.startswith("digest.")
            chosen = [x for x in samples if path.name == "title.j2" or (x.get("kind") == "digest") == digest]
            try:
                template = env.get_template(path.name)
                for sample in chosen:
                    count = sum(len(r.get("stories", ())) for r in sample.get("rules", ()))
                    template.render(
                        {**sample, "key": "watcher-check", "message_kind": kind, "story_count": count}
                    )
            except Exception as exc:
                problems.append(f"{path}: {type(exc).__name__}: {exc}")
        return problems


_ITEM = {
    "title": "Xi, Putin and Kim stand together at Beijing parade",
    "link": "https://news.example/trio",
    "feed": "wire",
    "publisher": "Wire",
    "published": "2025-09-03T01:59:00+00:00",
    "tier": "secondary",
}
_ALERT: dict[str, Any] = {
    "kind": "open",
    "rule": {"id": "trio-together", "title": "Xi, Putin and Kim appear together", "severity": "high"},
    "story": {"id": 1, "title": _ITEM["title"], "first_seen": _ITEM["published"], "item_count": 1},
    "items": [_ITEM],
    "evidence": [{"term": "xi", "kind": "entity", "field": "title", "text": "Xi"}],
    "sources": ["Wire"], "copies": [], "primary": [], "thread": "watcher-story-1",
}  # fmt: skip
SAMPLES: list[dict[str, Any]] = [
    _ALERT,
    {
        **_ALERT,
        "kind": "update",
        "update": {"threshold": 3, "sources": 3},
        "sources": ["Wire", "Paper", "Agency"],
    },
    {
        "kind": "digest",
        "period": {"start": "2025-09-03T00:00:00+00:00", "end": "2025-09-04T00:00:00+00:00"},
        "rules": [
            {
                "id": "trio-together",
                "title": "Xi, Putin and Kim appear together",
                "severity": "high",
                "stories": [{"id": 1, "title": _ITEM["title"], "sources": ["Wire"], "entries": [_ITEM]}],
            }
        ],
    },
]

_default = Renderer()


def render(delivery: Any, channel: ChannelConfig, renderer: Renderer | None = None) -> tuple[str, str, str]:
    """(title, body, apprise body format) of an outbox delivery for one channel."""
    payload = {"kind": delivery.kind, **delivery.payload}
    message = (renderer or _default).render(payload, kind=kind_for(channel), key=delivery.dedupe_key)
    return message.title, message.body, message.body_format
