"""The farm measured alone: a minimal keep-alive HTTP client polls every feed, and we read the farm's CPU.

If the farm's CPU per poll is small next to any tool's poll time, the farm is not the bottleneck.
Run alone: ``python bench/farmcheck.py --feeds 1000``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from farmctl import FarmProcess


@dataclass(frozen=True, slots=True)
class Load:
    requests: int
    wall: float
    farm_cpu: float  # seconds of the farm process's CPU during the poll
    body_bytes: int


async def _poll(urls: list[str], etags: dict[str, str], concurrency: int) -> int:
    """GET every URL over keep-alive connections (one per worker and host); return body bytes read."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for u in urls:
        queue.put_nowait(u)
    total = 0

    async def worker() -> None:
        nonlocal total
        conns: dict[str, tuple[asyncio.StreamReader, asyncio.StreamWriter]] = {}
        while not queue.empty():
            url = queue.get_nowait()
            parts = urlsplit(url)
            key = parts.netloc
            if key not in conns:
                conns[key] = await asyncio.open_connection(parts.hostname, parts.port)
            reader, writer = conns[key]
            cond = f"If-None-Match: {etags[url]}\r\n" if url in etags else ""
            writer.write(
                f"GET {parts.path} HTTP/1.1\r\nHost: {key}\r\nAccept-Encoding: gzip\r\n{cond}\r\n".encode()
            )
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            pairs = (ln.partition(":") for ln in head.split("\r\n")[1:])
            headers = {k.strip().lower(): v.strip() for k, _, v in pairs}
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            total += len(body)
            if "etag" in headers:
                etags[url] = headers["etag"]
        for _, w in conns.values():
            w.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return total


def check(farm: FarmProcess, urls: list[str], *, concurrency: int = 50) -> tuple[Load, Load]:
    """(full poll, all-304 poll) of ``urls`` with no added latency."""
    etags: dict[str, str] = {}
    out = []
    for _ in range(2):
        cpu0, t0 = farm.cpu_seconds(), time.perf_counter()
        got = asyncio.run(_poll(urls, etags, concurrency))
        out.append(Load(len(urls), time.perf_counter() - t0, farm.cpu_seconds() - cpu0, got))
    return out[0], out[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--feeds", type=int, default=1000)
    args = ap.parse_args()
    with FarmProcess(feeds=args.feeds) as farm:
        full, warm = check(farm, farm.urls())
    for name, load in (("full bodies", full), ("all 304", warm)):
        print(
            f"{name}: {load.requests} requests in {load.wall:.2f} s ({load.requests / load.wall:,.0f}/s), "
            f"{load.body_bytes / 1e6:.0f} MB; farm CPU {load.farm_cpu:.2f} s"
        )


if __name__ == "__main__":
    main()
