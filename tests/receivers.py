"""Real alert receivers on loopback: an SMTP server (aiosmtpd) and a webhook receiver (http.server).

Tests point apprise at them with ``mailto://127.0.0.1:PORT?...&mode=insecure`` and ``json://127.0.0.1:PORT/``.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0, interval: float = 0.02) -> bool:
    """Poll ``predicate`` until true or ``timeout``; returns its last value (a deadline, not a sleep)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@dataclass
class SmtpSink:
    """Messages received by a real SMTP server on 127.0.0.1."""

    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    refuse: bool = False  # answer 451 (try later) to every message while set

    def url(self, to: str = "analyst@example.org") -> str:
        return f"mailto://127.0.0.1:{self.port}?from=watcher@example.org&to={to}&mode=insecure"

    def bodies(self) -> list[str]:
        with self.lock:
            msgs = list(self.messages)
        out = []
        for m in msgs:
            part = m.get_body(preferencelist=("plain", "html"))
            out.append(part.get_content() if part is not None else "")
        return out

    def subjects(self) -> list[str]:
        with self.lock:
            return [str(m["Subject"]) for m in self.messages]


class _SmtpHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.sink.refuse:
            return "451 4.3.0 try again later"
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.sink.lock:
            self.sink.messages.append(msg)  # type: ignore[arg-type]
        return "250 OK"


@contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink(port=free_port())
    controller = Controller(_SmtpHandler(sink), hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@dataclass
class WebhookSink:
    """JSON posts received by a real HTTP server on 127.0.0.1 (apprise ``json://``)."""

    port: int = 0
    posts: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    fail_next: int = 0  # answer 500 to this many posts first
    status: int = 200  # answer this status to every post while not 200
    delay: float = 0.0  # wait this long before answering

    def url(self, path: str = "/hook") -> str:
        return f"json://127.0.0.1:{self.port}{path}"

    def messages(self) -> list[str]:
        with self.lock:
            return [str(p.get("message", "")) for p in self.posts]

    def keys(self) -> list[str]:
        with self.lock:
            return [h.get("x-watcher-alert-key", "") for h in self.headers]


@contextmanager
def webhook_sink(port: int = 0) -> Iterator[WebhookSink]:
    """A webhook receiver on ``port`` (default: a free one; pass a port to bring a "down" URL back)."""
    sink = WebhookSink()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if sink.delay:
                time.sleep(sink.delay)
            with sink.lock:
                failing = sink.fail_next > 0 or sink.status != 200
                if sink.fail_next > 0:
                    sink.fail_next -= 1
                status = 500 if failing and sink.status == 200 else sink.status
                if not failing:
                    sink.posts.append(json.loads(body or b"{}"))
                    sink.headers.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    sink.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield sink
    finally:
        server.shutdown()
        server.server_close()
