"""The outbox worker: sends pending deliveries through apprise, in order per channel, with retries.

Per channel, deliveries go out oldest first; a failed send pauses that channel with exponential backoff
(so a channel that was down gets everything, in order, once it is back) and never holds up the others.
A delivery is marked 'sending' (committed) before the send and 'sent' after, so a crash between the two
means one more send on restart: at-least-once, with the alert's dedupe key in every message (and in an
``X-Watcher-Alert-Key`` header for webhook channels) so receivers can drop the duplicate.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import apprise
from apprise.decorators import notify as apprise_notify

from watcher.config import ChannelConfig, DeliveryConfig
from watcher.render import render
from watcher.store import Delivery, Store, from_iso

log = logging.getLogger(__name__)

_HEADER_SCHEMES = {"json", "jsons", "form", "forms", "xml", "xmls"}
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


def _send_sync(channel: ChannelConfig, delivery: Delivery) -> SendResult:
    url = channel.url.get_secret_value()
    if channel.scheme in _HEADER_SCHEMES:
        url += ("&" if "?" in url else "?") + f"+X-Watcher-Alert-Key={delivery.dedupe_key}"
    app = apprise.Apprise()
    if not app.add(url):
        return SendResult(False, f"not a usable apprise URL ({channel.display_url})")
    title, body, body_format = render(delivery, channel)
    try:
        result = app.notify(title=title, body=body, body_format=body_format)
    except Exception as exc:  # apprise plugins may raise despite the contract; keep the outbox alive
        return SendResult(
            False, redact(f"{type(exc).__name__}: {exc}", [url, channel.url.get_secret_value()])
        )
    if result:
        return SendResult(True)
    # apprise 2.x keeps each target's own log lines on its result: say why this one failed
    messages = [
        entry.message
        for target in getattr(result, "results", ())
        for entry in target.logs()
        if entry.level in ("WARNING", "ERROR", "CRITICAL")
    ]
    status = str(getattr(result, "status", "") or "")
    reason = "; ".join(dict.fromkeys(messages)) or f"apprise reported {status or 'failure'}"
    return SendResult(False, redact(reason, [url, channel.url.get_secret_value()])[:500])


async def apprise_send(name: str, channel: ChannelConfig, delivery: Delivery) -> SendResult:
    return await asyncio.to_thread(_send_sync, channel, delivery)


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
        send: SendFn = apprise_send,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self.channels = channels
        self.config = config
        self.send = send
        self.clock = clock
        self._lock = asyncio.Lock()
        self._unknown_warned: set[str] = set()

    def backoff(self, attempts: int) -> float:
        return float(min(self.config.retry_cap, self.config.retry_base * (2 ** max(0, attempts - 1))))

    async def run_once(self) -> DeliveryReport:
        report = DeliveryReport()
        async with self._lock:
            names = self.store.pending_channels()
            await asyncio.gather(*(self._drain(name, report) for name in names))
        return report

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
            delivery = self.store.next_delivery(name)
            now = self.clock()
            if delivery is None or from_iso(delivery.next_attempt_at) > now:
                return
            self.store.mark_sending(delivery.id)
            try:
                result = await asyncio.wait_for(self.send(name, channel, delivery), self.config.timeout)
            except TimeoutError:
                result = SendResult(False, f"no answer within {self.config.timeout:g}s")
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
