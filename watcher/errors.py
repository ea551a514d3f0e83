"""One exception tree for watcher.

    WatcherError
     ├── ConfigError      config or watch list unusable; carries every Problem found (file:line:column)
     ├── FetchError       a feed could not be fetched (carries the feed name)
     ├── ParseError       a body had no readable feed in it (carries the feed name)
     ├── StoreError       the database refused a read or write
     └── DeliveryError    a channel refused or failed an alert (carries the channel name)

Every error survives pickling (parsing runs in a worker process, and its errors come back).
Expected outcomes are values, not exceptions: "not modified", "no new items", "duplicate".
Third-party errors are wrapped at the stage edge (``raise FetchError(...) from exc``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong in a config or watch list file, with where it is (1-based line and column)."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class WatcherError(Exception):
    """Root of every error watcher raises on purpose."""


class ConfigError(WatcherError):
    """The config or the watch list cannot be used. ``problems`` lists every problem found at once."""

    def __init__(self, problems: list[Problem] | Problem | str) -> None:
        if isinstance(problems, str):
            problems = [Problem("<config>", 0, 0, problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems: list[Problem] = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))

    def __reduce__(self) -> tuple[type[ConfigError], tuple[list[Problem]]]:
        return (type(self), (self.problems,))


class FetchError(WatcherError):
    """A feed could not be fetched."""

    def __init__(self, feed: str, message: str, *, retry_after: float | None = None) -> None:
        self.feed = feed
        self.message = message
        self.retry_after = retry_after
        super().__init__(f"{feed}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), (self.feed, self.message), {"retry_after": self.retry_after}))


class ParseError(WatcherError):
    """A fetched body held no readable feed. Picklable: it crosses from the parser process."""

    def __init__(self, feed: str, message: str) -> None:
        self.feed = feed
        self.message = message
        super().__init__(f"{feed}: {message}")

    def __reduce__(self) -> tuple[type[ParseError], tuple[str, str]]:
        return (type(self), (self.feed, self.message))


class StoreError(WatcherError):
    """The database refused a read or a write."""


class DeliveryError(WatcherError):
    """A channel failed to take an alert."""

    def __init__(self, channel: str, message: str) -> None:
        self.channel = channel
        self.message = message
        super().__init__(f"{channel}: {message}")

    def __reduce__(self) -> tuple[type[DeliveryError], tuple[str, str]]:
        return (type(self), (self.channel, self.message))


def _rebuild(cls: type[Exception], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Exception:
    return cls(*args, **kwargs)
