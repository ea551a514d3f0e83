"""The daemon's config (`watcher.yaml`): models, loading, and the only place that reads the environment.

Channel URLs may hold ``${NAME}`` references: each is read from the environment, else from the systemd
credential file ``$CREDENTIALS_DIRECTORY/NAME``. The expanded URL lives only in memory (as a SecretStr);
``ChannelConfig.display_url`` is what logs and ``watcher check`` show.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from watcher.errors import ConfigError, Problem
from watcher.models import SEVERITIES, Severity
from watcher.units import parse_duration, parse_size
from watcher.yamlsrc import display_path, position, read_yaml, validate

DEFAULT_CONFIG = Path("config/watcher.yaml")
ENV_CONFIG = "WATCHER_CONFIG"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _duration(value: Any) -> float:
    return parse_duration(value)


def _size(value: Any) -> int:
    return parse_size(value)


Duration = Annotated[float, BeforeValidator(_duration)]
Size = Annotated[int, BeforeValidator(_size)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PollConfig(_Strict):
    """Defaults for every feed, and the HTTP client's limits."""

    interval: Duration = Field(default=600.0, description="default poll interval per feed, e.g. 10m")
    jitter: Duration = Field(
        default=30.0, description="each feed's polls start at its own random offset within this; spreads load"
    )
    connect_timeout: Duration = 10.0
    read_timeout: Duration = 20.0
    deadline: Duration = Field(default=60.0, description="total time one fetch may take")
    max_bytes: Size = Field(default=10_000_000, description="largest feed body accepted")
    concurrency: int = Field(default=20, ge=1, le=500, description="fetches in flight at once")
    per_host: int = Field(default=2, ge=1, le=50, description="fetches in flight per host")
    max_redirects: int = Field(default=5, ge=0, le=20)
    user_agent: str | None = None
    parse_workers: int = Field(default=1, ge=0, le=16, description="parser processes; 0 parses in a thread")

    @field_validator("interval")
    @classmethod
    def _min_interval(cls, v: float) -> float:
        if v < 1:
            raise ValueError("an interval must be at least 1s")
        return v


class FeedConfig(_Strict):
    name: str = Field(description="short unique name, used in logs, filters and the database")
    url: str
    interval: Duration | None = None
    tags: tuple[str, ...] = ()
    publisher: str | None = Field(default=None, description="outlet; several feeds of one outlet count once")
    tier: Literal["primary", "secondary"] = "secondary"
    enabled: bool = True

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("a feed name uses letters, digits, '-', '_' or '.', e.g. 'yonhap-en'")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"a feed url must be http:// or https:// with a host, got {v!r}")
        return v

    @field_validator("interval")
    @classmethod
    def _min_interval(cls, v: float | None) -> float | None:
        if v is not None and v < 1:
            raise ValueError("an interval must be at least 1s")
        return v

    @property
    def host(self) -> str:
        return (urlsplit(self.url).hostname or "").lower()

    @property
    def publisher_name(self) -> str:
        """The outlet this feed belongs to: its ``publisher``, else its host without ``www.``/``feeds.``."""
        if self.publisher:
            return self.publisher
        host = self.host
        for prefix in ("www.", "feeds.", "rss.", "feed."):
            host = host.removeprefix(prefix)
        return host


def _time_of_day(value: Any) -> str:
    if not isinstance(value, str) or not _HHMM.match(value.strip()):
        raise ValueError(f"a time of day is written HH:MM, e.g. '07:00', got {value!r}")
    return value.strip()


def _time_zone(value: Any) -> str:
    try:
        ZoneInfo(str(value))
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}: use an IANA name such as 'Asia/Seoul' or 'UTC'"
        ) from None
    return str(value)


TimeOfDay = Annotated[str, BeforeValidator(_time_of_day)]
TimeZone = Annotated[str, BeforeValidator(_time_zone)]


class QuietHours(_Strict):
    start: TimeOfDay = Field(description="HH:MM local time")
    end: TimeOfDay = Field(description="HH:MM local time")
    timezone: TimeZone = "UTC"
    min_severity: Severity = Field(default="critical", description="alerts at or above this still pass")


class DigestConfig(_Strict):
    every: Duration | None = Field(default=None, description="send a digest this often, e.g. 1h")
    at: TimeOfDay | None = Field(default=None, description="or daily at HH:MM local time")
    timezone: TimeZone = "UTC"

    @model_validator(mode="after")
    def _one_schedule(self) -> DigestConfig:
        if (self.every is None) == (self.at is None):
            raise ValueError("set one of `every` (e.g. 1h) or `at` (e.g. '07:00')")
        if self.every is not None and self.every < 60:
            raise ValueError("a digest is sent at most once a minute: `every` must be at least 1m")
        return self


class RateLimit(_Strict):
    count: int = Field(ge=1)
    per: Duration


class ChannelConfig(_Strict):
    url: SecretStr = Field(description="an apprise URL; ${ENV_NAME} is replaced from the environment")
    severity: Severity = Field(default="info", description="send alerts at or above this severity")
    rules: tuple[str, ...] | None = Field(default=None, description="only these rule ids")
    tags: tuple[str, ...] | None = Field(default=None, description="only rules carrying one of these tags")
    mode: Literal["immediate", "digest"] = "immediate"
    digest: DigestConfig | None = None
    quiet_hours: QuietHours | None = None
    rate_limit: RateLimit | None = None
    format: Literal["auto", "text", "markdown", "html"] = "auto"
    display_url: str = Field(default="", exclude=True, description="(derived) the URL with secrets hidden")

    @model_validator(mode="before")
    @classmethod
    def _expand(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, str):
            data = {"url": data}
        if not isinstance(data, dict) or not isinstance(data.get("url"), str):
            return data
        env = (info.context or {}).get("environ", os.environ)
        raw = data["url"]
        data = dict(data)
        data["url"] = expand_refs(raw, env)
        data["display_url"] = _ENV_REF.sub(lambda m: "${" + m.group(1) + "}", raw)
        return data

    @property
    def scheme(self) -> str:
        return self.url.get_secret_value().split("://", 1)[0].lower()


def expand_refs(text: str, environ: Any) -> str:
    """Replace each ``${NAME}`` from the environment, else from ``$CREDENTIALS_DIRECTORY/NAME``."""

    def repl(m: re.Match[str]) -> str:
        name = m.group(1)
        if name in environ:
            return str(environ[name])
        cred_dir = environ.get("CREDENTIALS_DIRECTORY")
        if cred_dir:
            cred = Path(cred_dir) / name
            try:
                return cred.read_text(encoding="utf-8").strip()
            except OSError:
                pass
        raise ValueError(
            f"${{{name}}} is not set: export {name}=... (or pass it as a systemd credential named {name})"
        )

    return _ENV_REF.sub(repl, text)


class DeliveryConfig(_Strict):
    retry_base: Duration = Field(default=30.0, description="first retry delay; doubles each attempt")
    retry_cap: Duration = Field(default=3600.0, description="longest delay between retries")
    timeout: Duration = Field(default=30.0, description="longest one send may take")
    give_up_after: Duration = Field(default=7 * 86400.0, description="stop retrying an alert this old")


class SilenceConfig(_Strict):
    """Silence is a signal: a rule or feed gone quiet shows in `watcher status` (and goes to ops_channel)."""

    rule_quiet: Duration = Field(default=3 * 86400.0, description="a steadily matching rule silent this long")
    feed_ratio: float = Field(
        default=0.2, gt=0, lt=1, description="a feed whose last 24 h fall below this share of its median day"
    )


class HttpConfig(_Strict):
    listen: str = Field(default="127.0.0.1:9108", description="address of /healthz and /metrics")
    enabled: bool = False


class Config(_Strict):
    database: str = Field(
        default="var/watcher.db", description="SQLite file; relative to $STATE_DIRECTORY or cwd"
    )
    watchlist: str = Field(default="watchlist.yaml", description="relative to this config file")
    alert_max_age: Duration = Field(default=86400.0, description="older items are stored, not alerted")
    poll: PollConfig = PollConfig()
    feeds: tuple[FeedConfig, ...] = ()
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    delivery: DeliveryConfig = DeliveryConfig()
    retention: Duration = Field(default=90 * 86400.0, description="items and deliveries older are pruned")
    ops_channel: str | None = Field(default=None, description="channel for feed-health alerts")
    feed_failure_alert: Duration = Field(default=6 * 3600.0, description="alert when a feed fails this long")
    silence: SilenceConfig = SilenceConfig()
    http: HttpConfig = HttpConfig()

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, v: dict[str, ChannelConfig]) -> dict[str, ChannelConfig]:
        for name in v:
            if not _NAME.match(name):
                raise ValueError(f"channel name {name!r}: use letters, digits, '-', '_' or '.'")
        return v


@dataclass(frozen=True, slots=True)
class LoadedConfig:
    """A validated config plus where it came from, resolved paths and non-fatal warnings."""

    config: Config
    path: Path | None  # None for the embedded defaults
    database: Path
    watchlist: Path
    warnings: tuple[str, ...] = field(default=())

    @property
    def shown(self) -> str:
        return display_path(self.path) if self.path else "<embedded defaults>"

    def feed_interval(self, feed: FeedConfig) -> float:
        return feed.interval if feed.interval is not None else self.config.poll.interval


def embedded_defaults_dir() -> Path:
    """The directory holding the packaged default watcher.yaml and watchlist.yaml."""
    return Path(str(resources.files("watcher") / "defaults"))


def resolve_config_path(explicit: str | Path | None, environ: Any = None) -> Path | None:
    """``--config``, else ``$WATCHER_CONFIG``, else ``config/watcher.yaml`` if present, else None."""
    env = os.environ if environ is None else environ
    if explicit:
        return Path(explicit)
    if env.get(ENV_CONFIG):
        return Path(env[ENV_CONFIG])
    if DEFAULT_CONFIG.exists():
        return DEFAULT_CONFIG
    return None


def load_config(path: str | Path | None = None, *, environ: Any = None) -> LoadedConfig:
    """Read and validate a config file (or the embedded defaults when ``path`` is None).

    Raises ConfigError listing every problem as ``file:line:column: message``.
    """
    env = os.environ if environ is None else environ
    from_defaults = path is None
    cfg_path = embedded_defaults_dir() / "watcher.yaml" if path is None else Path(path)
    shown = display_path(cfg_path)
    doc = read_yaml(cfg_path)
    if doc is not None and not isinstance(doc, dict):
        raise ConfigError(Problem(shown, 1, 1, "the config must be a mapping of keys (database, feeds, ...)"))
    config = validate(Config, doc, shown, context={"environ": env})
    problems, warnings = _cross_checks(config, doc, shown)
    if problems:
        raise ConfigError(problems)
    base = cfg_path.parent
    watchlist = Path(config.watchlist)
    if not watchlist.is_absolute():
        watchlist = base / watchlist
    database = Path(config.database).expanduser()
    if not database.is_absolute():
        state_dir = env.get("STATE_DIRECTORY")
        database = Path(state_dir.split(":")[0]) / database if state_dir else Path.cwd() / database
    return LoadedConfig(
        config=config,
        path=None if from_defaults else cfg_path,
        database=database,
        watchlist=watchlist,
        warnings=tuple(warnings),
    )


def _cross_checks(config: Config, doc: Any, shown: str) -> tuple[list[Problem], list[str]]:
    problems: list[Problem] = []
    warnings: list[str] = []
    seen: dict[str, int] = {}
    for i, feed in enumerate(config.feeds):
        line, col = position(doc, ["feeds", i, "name"])
        if feed.name in seen:
            problems.append(
                Problem(
                    shown, line, col, f"duplicate feed name {feed.name!r} (also feed #{seen[feed.name] + 1})"
                )
            )
        seen.setdefault(feed.name, i)
        interval = feed.interval if feed.interval is not None else config.poll.interval
        if interval < 60 and not _is_local(feed.host):
            warnings.append(
                f"{shown}:{line}:{col}: feed {feed.name!r} polls remote host {feed.host} every "
                f"{interval:g}s; be polite: once a minute or less often"
            )
    if config.ops_channel is not None and config.ops_channel not in config.channels:
        from watcher.yamlsrc import did_you_mean

        line, col = position(doc, ["ops_channel"])
        hint = did_you_mean(config.ops_channel, config.channels)
        problems.append(Problem(shown, line, col, f"unknown channel {config.ops_channel!r}{hint}"))
    for name, channel in config.channels.items():
        if channel.mode == "digest" and channel.digest is None:
            line, col = position(doc, ["channels", name, "mode"])
            problems.append(
                Problem(
                    shown,
                    line,
                    col,
                    f"channel {name!r} is a digest: add `digest: {{every: 1h}}` or `{{at: '07:00'}}`",
                )
            )
        if channel.severity not in SEVERITIES:  # pragma: no cover - Literal already checks
            continue
    return problems, warnings


def _is_local(host: str) -> bool:
    if host in ("localhost", ""):
        return True
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return host.endswith(".localhost") or host.endswith(".local")
    return addr.is_loopback or addr.is_private or addr.is_link_local
