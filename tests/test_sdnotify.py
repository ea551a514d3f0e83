"""The notify protocol against a real unix datagram socket, as systemd listens on one."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from watcher.sdnotify import Notifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    yield path, sock
    sock.close()


def recv(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def test_ready_status_stopping_reach_the_socket(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    n = Notifier.from_environ({"NOTIFY_SOCKET": path})
    assert n.ready("polling 3 feeds")
    assert recv(sock) == ["READY=1", "STATUS=polling 3 feeds", f"MAINPID={os.getpid()}"]
    assert n.status("reloading\nwatch list")
    assert recv(sock) == ["STATUS=reloading watch list"]
    assert n.stopping()
    assert recv(sock) == ["STOPPING=1"]
    assert n.watchdog()
    assert recv(sock) == ["WATCHDOG=1"]


def test_reloading_carries_monotonic_time(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    n = Notifier.from_environ({"NOTIFY_SOCKET": path})
    assert n.reloading("reloading config")
    fields = recv(sock)
    assert fields[0] == "RELOADING=1"
    assert fields[1].startswith("MONOTONIC_USEC=") and int(fields[1].split("=")[1]) > 0
    assert fields[2:] == ["STATUS=reloading config"]


def test_abstract_socket_address() -> None:
    name = f"watcher-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        n = Notifier.from_environ({"NOTIFY_SOCKET": "@" + name})
        assert n.ready()
        assert recv(sock)[0] == "READY=1"


def test_without_notify_socket_everything_is_a_no_op() -> None:
    n = Notifier.from_environ({"WATCHDOG_USEC": "2000000"})
    assert not n.enabled
    assert n.watchdog_interval is None
    assert (n.ready(), n.status("x"), n.watchdog(), n.stopping()) == (False, False, False, False)


def test_a_vanished_socket_does_not_raise(tmp_path: Path) -> None:
    n = Notifier.from_environ({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert n.ready() is False


@pytest.mark.parametrize(
    ("env", "interval"),
    [
        pytest.param({"WATCHDOG_USEC": "4000000"}, 2.0, id="half-the-timeout"),
        pytest.param({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}, None, id="another-pids-watchdog"),
        pytest.param({"WATCHDOG_USEC": "0"}, None, id="zero"),
        pytest.param({"WATCHDOG_USEC": "soon"}, None, id="garbage"),
        pytest.param({}, None, id="unset"),
    ],
)
def test_watchdog_interval(env: dict[str, str], interval: float | None) -> None:
    n = Notifier.from_environ({"NOTIFY_SOCKET": "/run/x", **env})
    assert n.watchdog_interval == interval


def test_watchdog_pings_only_while_healthy(listener: tuple[str, socket.socket]) -> None:
    path, sock = listener
    state = {"ok": True}

    def healthy() -> tuple[bool, str]:
        return (True, "ok") if state["ok"] else (False, "database is not writable")

    n = Notifier.from_environ({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "40000"})  # ping every 20 ms

    async def scenario() -> list[str]:
        task = asyncio.create_task(n.watchdog_loop(healthy))
        await asyncio.sleep(0.1)
        state["ok"] = False
        await asyncio.sleep(0.1)
        task.cancel()
        sock.setblocking(False)
        got: list[str] = []
        while True:
            try:
                got.append(sock.recv(4096).decode())
            except BlockingIOError:
                return got

    got = asyncio.run(scenario())
    pings = [m for m in got if m == "WATCHDOG=1"]
    assert len(pings) >= 3
    # once unhealthy: one STATUS line saying why, then silence (no more pings)
    assert got[len(pings) :] == ["STATUS=unhealthy: database is not writable"]
