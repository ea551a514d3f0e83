"""The systemd notify protocol: one datagram per message to ``$NOTIFY_SOCKET`` (a leading ``@`` = abstract).

    notifier = Notifier.from_environ()
    notifier.ready("polling 35 feeds")        # READY=1 + STATUS=...
    task = asyncio.create_task(notifier.watchdog_loop(healthy))   # WATCHDOG=1 every WATCHDOG_USEC/2
    notifier.stopping()                       # STOPPING=1

Outside systemd (no ``$NOTIFY_SOCKET``) every call is a no-op returning False. A send that fails is
logged at debug level and never raises: the daemon must not die because systemd went away.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping

log = logging.getLogger(__name__)

Healthy = Callable[[], tuple[bool, str]]  # (ok, reason); watcher.health.Health is one


class Notifier:
    """Sends notify messages to one socket. Build it with :meth:`from_environ`."""

    def __init__(self, address: str | None, *, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec
        self._unhealthy_reason: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> Notifier:
        """Read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` (the watchdog is ours only when
        ``WATCHDOG_PID`` is unset or is our pid)."""
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET") or None
        usec: int | None = None
        raw = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if raw.isdigit() and int(raw) > 0 and (not pid or pid == str(os.getpid())):
            usec = int(raw)
        return cls(address, watchdog_usec=usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    @property
    def watchdog_interval(self) -> float | None:
        """Seconds between pings (half the watchdog timeout), or None when there is no watchdog."""
        if not self.enabled or self.watchdog_usec is None:
            return None
        return self.watchdog_usec / 2 / 1_000_000

    def send(self, *fields: str) -> bool:
        """Send ``KEY=VALUE`` fields as one datagram. True if it was sent."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        payload = "\n".join(fields).encode("utf-8")
        try:  # a socket per message, as libsystemd does: nothing to close, nothing to go stale
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(payload, target)
        except OSError as exc:
            log.debug("sd_notify to %s failed: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.send("READY=1", *_status(status), f"MAINPID={os.getpid()}")

    def status(self, text: str) -> bool:
        return self.send(*_status(text))

    def reloading(self, status: str | None = None) -> bool:
        """RELOADING=1 (with the monotonic time newer systemd asks for); follow with :meth:`ready`."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.send("RELOADING=1", f"MONOTONIC_USEC={usec}", *_status(status))

    def stopping(self, status: str | None = None) -> bool:
        return self.send("STOPPING=1", *_status(status))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def ping_if_healthy(self, healthy: Healthy) -> bool:
        """Ping the watchdog if ``healthy()`` says so; otherwise say why in STATUS= (once per reason)."""
        ok, reason = healthy()
        if ok:
            if self._unhealthy_reason is not None:
                log.info("healthy again; watchdog pings resume")
                self._unhealthy_reason = None
            return self.watchdog()
        if reason != self._unhealthy_reason:
            log.error("unhealthy: %s; watchdog pings withheld (systemd restarts the service)", reason)
            self.status(f"unhealthy: {reason}")
            self._unhealthy_reason = reason
        return False

    async def watchdog_loop(self, healthy: Healthy) -> None:
        """Ping every ``watchdog_interval`` while ``healthy()``; return at once when there is no watchdog.

        It runs on the event loop on purpose: a blocked loop stops the pings and systemd restarts us.
        """
        interval = self.watchdog_interval
        if interval is None:
            return
        while True:
            self.ping_if_healthy(healthy)
            await asyncio.sleep(interval)


def _status(text: str | None) -> tuple[str, ...]:
    if not text:
        return ()
    return ("STATUS=" + " ".join(text.split()),)
