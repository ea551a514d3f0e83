"""The outbox worker: sends pending deliveries through apprise, in order per channel, with retries.

Per channel, deliveries go out oldest first; a failed send pauses that channel with exponential backoff
(so a channel that was down gets everything, in order, once it is back) and never holds up the others.
A delivery is marked 'sending' (committed) before the send and 'sent' after, so a crash between the two
means one more send on restart: at-least-once, with the alert's dedupe key in every message (and in an
``X-Watcher-Alert-Key`` header for webhook and email channels) so receivers can drop the duplicate.

Each pass first writes the digests that are due (``watcher.digests``). Before a send, the channel's
rate limit may pause the channel (nothing is dropped; the rest wait their turn), and its quiet hours
hold a delivery below their severity until they end while later, more severe ones go ahead. Updates
of a story go to the same thread where apprise lets the sender name it (Google Chat ``thread``; email
``References``); elsewhere they are separate messages marked UPDATE.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import apprise
from apprise.decorators import notify as apprise_notify

from watcher.config import ChannelConfig, DeliveryConfig
from watcher.digests import make_digests
from watcher.render import Renderer, render
from watcher.route import quiet_hold, rate_limit_until
from watcher.store import Delivery, Store, from_iso

log = logging.getLogger(__name__)

_HEADER_SCHEMES = {"json", "jsons", "form", "forms", "xml", "xmls", "mailto", "mailtos"}
_EMAIL_SCHEMES = {"mailto", "mailtos"}
_THREAD_SCHEMES = {"gchat"}
_console_lock = threading.Lock()


@apprise_notify(on="console", name="watcher console")  # type: ignore[untyped-decorator,no-untyped-call,unused-ignore]
def _console(body: str, title: str, notify_type: str, *args: Any, **kwargs: Any) -> bool:
    """``console://``: print alerts to standard output (no account needed)."""
    with _console_lock:
        print(f"\n{title}\n{body}\n", flush=True)
    return True


@dataclass(frozen=True, slots=True)
class SendResult:
    ok: bool
    error: str | None = None


SendFn = Callable[[str, ChannelConfig, Delivery], Awaitable[SendResult]]


def redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret and len(secret) > 3:
            text = text.replace(secret, "****")
    return text


def target_url(channel: ChannelConfig, delivery: Delivery) -> str:
    """The channel's apprise URL with what this delivery adds: its key header, its story's thread."""
    url = channel.url.get_secret_value()
    extra: list[str] = []
    if channel.scheme in _HEADER_SCHEMES:
        extra.append(f"+X-Watcher-Alert-Key={quote(delivery.dedupe_key)}")
    thread = delivery.payload.get("thread")
    if isinstance(thread, str) and thread:
        if channel.scheme in _EMAIL_SCHEMES:
            extra.append("+References=" + quote(f"<{thread}@watcher.invalid>", safe=""))
        elif channel.scheme in _THREAD_SCHEMES:
            extra.append(f"thread={quote(thread, safe='')}")
    if extra:
        url += ("&" if "?" in url else "?") + "&".join(extra)
    return url


def _send_sync(channel: ChannelConfig, delivery: Delivery, renderer: Renderer | None = None) -> SendResult:
    url = target_url(channel, delivery)
    app = apprise.Apprise()
    if not app.add(url):
        return SendResult(False, f"not a usable apprise URL ({channel.display_url})")
    title, body, body_format = render(delivery, channel, renderer)
    try:
        result = app.notify(title=title, body=body, body_format=body_format)
    except Exception as exc:  # apprise plugins may raise despite the contract; keep the outbox alive
        return SendResult(
            False, redact(f"{type(exc).__name__}: {exc}", [url, channel.url.get_secret_value()])
        )
    if result:
        return SendResult(True)
    return SendResult(False, redact(_why(result), [url, channel.url.get_secret_value()])[:500])


def _why(result: Any) -> str:
    """Why apprise failed: apprise 2.x keeps each target's own log lines on its result."""
    messages = [
        entry.message
        for target in getattr(result, "results", ())
        for entry in target.logs()
        if entry.level in ("WARNING", "ERROR", "CRITICAL")
    ]
    status = str(getattr(result, "status", "") or "")
    return "; ".join(dict.fromkeys(messages)) or f"apprise reported {status or 'failure'}"


async def apprise_send(
    name: str, channel: ChannelConfig, delivery: Delivery, *, renderer: Renderer | None = None
) -> SendResult:
    return await asyncio.to_thread(_send_sync, channel, delivery, renderer)


def test_channel(channel: ChannelConfig) -> SendResult:
    """Send a short test message to ``channel`` now (no outbox) and return apprise's answer."""
    url = channel.url.get_secret_value()
    app = apprise.Apprise()
    if not app.add(url):
        return SendResult(False, f"not a usable apprise URL ({channel.display_url})")
    try:
        result = app.notify(
            title="watcher: test message",
            body="This is a test message from watcher (`watcher channels test`). Nothing happened.",
            body_format="text",
        )
    except Exception as exc:
        return SendResult(False, redact(f"{type(exc).__name__}: {exc}", [url]))
    return SendResult(True) if result else SendResult(False, redact(_why(result), [url])[:500])


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    dead: int = 0
    errors: dict[str, str] = field(default_factory=dict)


class Deliverer:
    """Sends what the outbox holds. Call ``run_once()``; it returns when nothing more is due now."""

    def __init__(
        self,
        store: Store,
        channels: dict[str, ChannelConfig],
        config: DeliveryConfig,
        *,
        send: SendFn | None = None,
        renderer: Renderer | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.channels = channels
        self.config = config
        self.renderer = renderer
        self.send: SendFn = send or self._apprise_send
        self.clock = clock
        self._busy: set[str] = set()  # channels a pass is sending to right now
        self._unknown_warned: set[str] = set()

    async def _apprise_send(self, name: str, channel: ChannelConfig, delivery: Delivery) -> SendResult:
        return await apprise_send(name, channel, delivery, renderer=self.renderer)

    def backoff(self, attempts: int) -> float:
        return float(min(self.config.retry_cap, self.config.retry_base * (2 ** max(0, attempts - 1))))

    async def run_once(self) -> DeliveryReport:
        """Send what is due on every channel. Passes may overlap: a channel that another pass is
        still sending to (a slow webhook, say) is left to that pass, so it holds up no other channel."""
        report = DeliveryReport()
        digests = make_digests(self.store, self.channels, self.clock())
        if digests:
            log.info("%d digest(s) written", len(digests))
        names = [name for name in self.store.pending_channels() if name not in self._busy]
        await asyncio.gather(*(self._drain_alone(name, report) for name in names))
        return report

    async def _drain_alone(self, name: str, report: DeliveryReport) -> None:
        self._busy.add(name)
        try:
            await self._drain(name, report)
        finally:
            self._busy.discard(name)

    async def _drain(self, name: str, report: DeliveryReport) -> None:
        channel = self.channels.get(name)
        if channel is None:
            if name not in self._unknown_warned:
                self._unknown_warned.add(name)
                log.warning(
                    "outbox holds alerts for channel %r, which is not in the config: kept, not sent", name
                )
            return
        while True:
            now = self.clock()
            delivery = self.store.next_delivery(name, now=now)
            if delivery is None or from_iso(delivery.next_attempt_at) > now:
                return
            if self._rate_limited(name, channel, now):
                return  # the channel waits its turn (a later pass sends it); nothing is dropped
            try:
                until = quiet_hold(channel, severity=delivery.severity, now=now)
            except ValueError as exc:  # bad quiet hours: send rather than hold everything forever
                log.error("channel %s: quiet hours ignored: %s", name, exc)
                until = None
            if until is not None:  # held; a more severe alert behind it may still go
                self.store.hold(delivery.id, until=until)
                log.info("alert %s to %s held for quiet hours until %s", delivery.dedupe_key, name, until)
                continue
            self.store.mark_sending(delivery.id)
            try:
                result = await asyncio.wait_for(self.send(name, channel, delivery), self.config.timeout)
            except TimeoutError:
                result = SendResult(False, f"no answer within {self.config.timeout:g}s")
            except Exception as exc:  # a plugin's or a template's bug: the delivery stays in the outbox
                log.exception("sending alert %s to %s raised", delivery.dedupe_key, name)
                text = f"{type(exc).__name__}: {exc}"
                result = SendResult(False, redact(text, [channel.url.get_secret_value()])[:500])
            now = self.clock()
            if result.ok:
                self.store.mark_sent(delivery.id, now=now)
                report.sent += 1
                log.info("alert %s sent to %s", delivery.dedupe_key, name)
                continue
            error = result.error or "failed"
            report.errors[name] = error
            age = (now - from_iso(delivery.created_at)).total_seconds()
            if age > self.config.give_up_after:
                self.store.mark_dead(
                    delivery.id, error=f"gave up after {delivery.attempts + 1} attempts: {error}"
                )
                report.dead += 1
                log.error("alert %s to %s abandoned: %s", delivery.dedupe_key, name, error)
                continue
            delay = self.backoff(delivery.attempts + 1)
            self.store.mark_retry(delivery.id, error=error, next_attempt_at=now + timedelta(seconds=delay))
            report.failed += 1
            log.warning(
                "channel %s (%s) failed: %s; retry in %.0fs (attempt %d)",
                name,
                channel.display_url,
                error,
                delay,
                delivery.attempts + 1,
            )
            return

    def _rate_limited(self, name: str, channel: ChannelConfig, now: datetime) -> bool:
        """True while the channel has sent its ``rate_limit.count`` within ``rate_limit.per``."""
        limit = channel.rate_limit
        if limit is None:
            return False
        sent = self.store.sent_times(name, since=now - timedelta(seconds=limit.per))
        return rate_limit_until(limit, sent, now) is not None
