"""Is the daemon healthy, and the optional HTTP listener that says so (``/healthz``) next to ``/metrics``.

``HealthCheck`` answers for both the listener and the systemd watchdog: healthy while the scheduler runs
and the database takes a write. The listener is a few lines of HTTP/1.1 on the daemon's own event loop,
on purpose: when the loop is stuck, ``/healthz`` stops answering too.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import sqlite3
import time
from collections.abc import Callable
from typing import NamedTuple

from watcher.errors import WatcherError
from watcher.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger(__name__)

PROBE_EVERY = 10.0  # seconds a database probe's answer is reused
_APPLICATION_ID = 0x77617463  # 'watc' in the SQLite header: the probe writes it, a real but tiny write
_MAX_REQUEST = 8192
_READ_TIMEOUT = 5.0


class Health(NamedTuple):
    ok: bool
    reason: str


def probe_database(conn: sqlite3.Connection) -> str | None:
    """Write one header field in a transaction of its own; None when it worked, else why not.

    ``BEGIN IMMEDIATE`` alone succeeds even on a read-only file, so the probe really writes (a few
    bytes to the WAL). A transaction already open on this connection means a write is under way: fine.
    """
    if conn.in_transaction:
        return None
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(f"PRAGMA application_id = {_APPLICATION_ID}")
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        return f"database is not writable: {exc}"
    return None


class HealthCheck:
    """Callable giving ``Health``: the scheduler runs and the database is writable (probed every 10 s)."""

    def __init__(
        self,
        *,
        scheduler_running: Callable[[], bool],
        connection: Callable[[], sqlite3.Connection | None],
        probe_every: float = PROBE_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.scheduler_running = scheduler_running
        self.connection = connection
        self.probe_every = probe_every
        self.clock = clock
        self._probed_at: float | None = None
        self._probe: str | None = None

    def __call__(self) -> Health:
        if not self.scheduler_running():
            return Health(False, "the scheduler is not running")
        conn = self.connection()
        if conn is None:
            return Health(False, "the database is not open")
        now = self.clock()
        if self._probed_at is None or now - self._probed_at >= self.probe_every or self._probe:
            self._probe = probe_database(conn)
            self._probed_at = now
        if self._probe:
            return Health(False, self._probe)
        return Health(True, "ok")


def parse_listen(listen: str) -> tuple[str, int]:
    """``127.0.0.1:9108``, ``[::1]:9108``, ``localhost:0`` or a bare port → (host, port)."""
    text = listen.strip()
    if text.isdigit():
        host, port_text = "127.0.0.1", text
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not port_text.isdigit() or not host:
            raise WatcherError(f"http.listen {listen!r}: write host:port, e.g. 127.0.0.1:9108")
        host = host.removeprefix("[").removesuffix("]")
    port = int(port_text)
    if port > 65535:
        raise WatcherError(f"http.listen {listen!r}: port {port} is out of range")
    return host, port


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HealthServer:
    """``/healthz`` and ``/metrics`` over HTTP/1.1 on the running loop; ``await start()``, ``close()``."""

    def __init__(
        self,
        listen: str,
        *,
        health: Callable[[], Health],
        metrics: Metrics,
        before_scrape: Callable[[], None] | None = None,
    ) -> None:
        self.host, self.port = parse_listen(listen)
        self.health = health
        self.metrics = metrics
        self.before_scrape = before_scrape
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        if not _is_loopback(self.host):
            log.warning(
                "http listener on %s: not loopback, so anyone who can reach it reads the metrics", self.host
            )
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("health and metrics on http://%s:%d/healthz and /metrics", self.host, self.port)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_READ_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            writer.close()
            return
        try:
            status, ctype, body = self._answer(head[:_MAX_REQUEST])
            method = head.split(b" ", 1)[0]
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Cache-Control: no-store\r\nConnection: close\r\n\r\n".encode("latin-1")
            )
            if method != b"HEAD":
                writer.write(body)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _answer(self, head: bytes) -> tuple[str, str, bytes]:
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3:
            return "400 Bad Request", "text/plain; charset=utf-8", b"bad request\n"
        method, target = parts[0], parts[1].split(b"?", 1)[0]
        if method not in (b"GET", b"HEAD"):
            return "405 Method Not Allowed", "text/plain; charset=utf-8", b"GET or HEAD only\n"
        if target == b"/healthz":
            ok, reason = self.health()
            status = "200 OK" if ok else "503 Service Unavailable"
            return status, "text/plain; charset=utf-8", f"{reason}\n".encode()
        if target == b"/metrics":
            if self.before_scrape is not None:
                try:
                    self.before_scrape()
                except Exception:  # a failed refresh must not hide the other metrics
                    log.exception("refreshing metrics before a scrape failed")
            return "200 OK", CONTENT_TYPE, self.metrics.render()
        if target == b"/":
            return "200 OK", "text/plain; charset=utf-8", b"watcher: /healthz /metrics\n"
        return "404 Not Found", "text/plain; charset=utf-8", b"not found: /healthz or /metrics\n"
