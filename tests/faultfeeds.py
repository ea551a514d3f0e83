"""A catalogue of misbehaving feeds, each served for real by tests/feedserver.py.

``install(server, tmp)`` sets every route and returns ``{feed name: url}``; ``FAULTS`` says what each
one is. The bombs are built from ../shared/data/pathological/defusedxml-xmltestdata when it is there
(the quadratic blow-up's entity) and by their textbook recipe otherwise.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

from feedserver import FeedServer

NOW = datetime.now(UTC).replace(microsecond=0)
HEADLINE = "Xi, Putin and Kim Jong Un stand together at Beijing parade"


def shared_dir() -> Path:
    env = os.environ.get("WATCHER_SHARED")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared"


def pathological_dir() -> Path:
    return shared_dir() / "data" / "pathological" / "defusedxml-xmltestdata"


def item(
    guid: str | None, title: str, *, age_hours: float = 1.0, date: str | None = "", link: str = ""
) -> str:
    """One RSS <item>; ``guid=None`` leaves out the guid, ``date=None`` the pubDate."""
    parts = [f"<title>{escape(title)}</title>"]
    if link or guid:
        parts.append(f"<link>{escape(link or f'https://news.example/{guid}')}</link>")
    if guid is not None:
        parts.append(f"<guid isPermaLink='false'>{escape(guid)}</guid>")
    if date is not None:
        parts.append(f"<pubDate>{date or format_datetime(NOW - timedelta(hours=age_hours))}</pubDate>")
    return "<item>" + "".join(parts) + "</item>"


def rss(title: str, items: list[str] | str, *, declaration: str = "<?xml version='1.0' encoding='utf-8'?>",
        doctype: str = "") -> str:  # fmt: skip
    body = "".join(items) if isinstance(items, list) else items
    return (
        f"{declaration}{doctype}<rss version='2.0'><channel><title>{escape(title)}</title>"
        f"<link>https://news.example/</link><description>d</description>{body}</channel></rss>"
    )


def billion_laughs() -> bytes:
    """The classic: ten levels of ten references each, 10⁹ 'lol's if expanded."""
    decls = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    doctype = "<!DOCTYPE rss [" + "".join(decls) + "]>"
    return rss("Laughs", [item("bomb", "lol &lol9;")], doctype=doctype).encode()


def quadratic_blowup() -> bytes:
    """One large internal entity referenced thousands of times (feedparser alone builds ~100 MB)."""
    source = pathological_dir() / "quadratic.xml"
    if source.is_file():
        m = re.search(rb'<!ENTITY a "([^"]+)"', source.read_bytes())
        entity = m.group(1).decode() if m else "B" * 5000
    else:  # pragma: no cover - the shared corpus is absent
        entity = "B" * 5000
    doctype = f'<!DOCTYPE rss [<!ENTITY a "{entity}">]>'
    refs = "&a;" * 20_000
    return rss("Quadratic", f"<item><title>t</title><guid>q</guid><description>{refs}</description></item>",
               doctype=doctype).encode()  # fmt: skip


def external_entities(secret_file: Path, canary_url: str) -> bytes:
    """SYSTEM entities naming a local file and a URL on our own server (its hits must stay 0)."""
    doctype = (
        f'<!DOCTYPE rss [<!ENTITY file SYSTEM "file://{secret_file}"><!ENTITY web SYSTEM "{canary_url}">'
        '<!ENTITY % remote SYSTEM "' + canary_url + '"> %remote;]>'
    )
    return rss("External", [item("xxe", "leak &file; &web;")], doctype=doctype).encode()


def many_items(n: int) -> bytes:
    return rss(
        "Many", [item(f"m{i}", f"Item number {i} of a very long feed", age_hours=48) for i in range(n)]
    ).encode()


def install(server: FeedServer, tmp: Path, *, canary: str = "/canary") -> dict[str, str]:
    """Set every fault route on ``server``; return {feed name: url} (healthy control feeds included)."""
    server.set(canary, "<!ENTITY leaked 'yes'>", content_type="text/plain")
    secret = tmp / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT", encoding="utf-8")
    cyrillic = "Путин и Ким Чен Ын на параде в Пекине"
    routes: dict[str, str] = {
        "ok-a": "/ok-a.xml",
        "ok-b": "/ok-b.xml",
        "status-500": "/500",
        "status-502": "/502",
        "status-503": "/503",
        "status-404": "/404",
        "rate-limited": "/429",
        "rate-limited-bare": "/429-bare",
        "redirect-loop": "/loop-a",
        "slow-loris": "/loris",
        "too-big": "/huge",
        "too-big-chunked": "/huge-chunked",
        "gzip-bomb": "/gzip-bomb",
        "billion-laughs": "/laughs",
        "quadratic": "/quadratic",
        "external-entity": "/xxe",
        "truncated": "/truncated",
        "wrong-charset": "/wrong-charset",
        "no-charset": "/no-charset",
        "html-page": "/html",
        "empty-body": "/empty",
        "empty-feed": "/empty-feed",
        "duplicate-guids": "/dups",
        "no-ids-no-dates": "/bare",
        "far-future": "/future",
        "ten-thousand": "/many",
        "huge-title": "/huge-title",
    }
    server.set("/ok-a.xml", rss("Control A", [item("a1", "Earthquake hits Afghanistan")]))
    server.set("/ok-b.xml", rss("Control B", [item("b1", "Typhoon nears Okinawa")]))
    server.set("/500", "boom", status=500, content_type="text/plain", etag=False)
    server.set("/502", "bad gateway", status=502, content_type="text/plain", etag=False)
    server.unavailable("/503")
    server.set("/404", "no", status=404, content_type="text/plain", etag=False)
    server.rate_limited("/429", retry_after=120)
    server.rate_limited("/429-bare", retry_after=None)
    server.redirect("/loop-a", "/loop-b")
    server.redirect("/loop-b", "/loop-a")
    server.slow_loris("/loris", every=1.0)
    server.huge("/huge", 50_000_000)
    server.huge("/huge-chunked", 50_000_000, content_length=False)
    server.gzip_bomb("/gzip-bomb", decoded=500_000_000)
    server.set("/laughs", billion_laughs())
    server.set("/quadratic", quadratic_blowup())
    server.set("/xxe", external_entities(secret, server.url(canary)))
    whole = rss("Cut", [item(f"t{i}", f"Story {i} before the cut") for i in range(3)])
    server.set("/truncated", whole[: whole.index("Story 2")])
    server.set(
        "/wrong-charset",
        rss("Кодировка", [item("w1", cyrillic)], declaration="<?xml version='1.0' encoding='utf-8'?>").encode(
            "cp1251"
        ),
        content_type="application/rss+xml; charset=utf-8",
    )
    server.set(
        "/no-charset", rss("Bare", [item("n1", cyrillic)], declaration="").encode(), content_type="text/xml"
    )
    server.html_page("/html")
    server.set("/empty", b"", content_type="application/rss+xml")
    server.set("/empty-feed", rss("Nothing yet", []))
    server.set(
        "/dups", rss("Dups", [item("same", "First story"), item("same", "Second story"), item("x", "Third")])
    )
    server.set("/bare", rss("Bare", [item(None, "No id, no date, no link", date=None),
                                     item(None, "Only a link", date=None, link="https://news.example/only-link")]))  # fmt: skip
    server.set(
        "/future", rss("Future", [item("f1", "From the year 2999", date="Fri, 01 Jan 2999 00:00:00 GMT")])
    )
    server.set("/many", many_items(10_000))
    server.set("/huge-title", rss("Long", [item("h1", "A" * 1_000_000)]))
    return {name: server.url(path) for name, path in routes.items()}


WATCHLIST = """\
entities:
  xi: {aliases: [Xi Jinping, Xi]}
  putin: {aliases: [Vladimir Putin, Putin, Путин]}
  kim: {aliases: [Kim Jong Un, Kim, Ким Чен Ын]}
rules:
  - id: trio-together
    title: Xi, Putin and Kim appear together
    severity: high
    all: [{entity: xi}, {entity: putin}, {entity: kim}]
"""

POLL = "interval: 1s, jitter: 0s, parse_workers: 0, connect_timeout: 1s, read_timeout: 2s, deadline: 3s, max_bytes: 5MB"


def write_config(tmp: Path, feeds: dict[str, str], *, poll: str = POLL, extra: str = "") -> Path:
    """A watcher.yaml (and watchlist.yaml) in ``tmp`` polling ``feeds``; returns the config path."""
    (tmp / "watchlist.yaml").write_text(WATCHLIST, encoding="utf-8")
    lines = "\n".join(f'  - {{name: {name}, url: "{url}"}}' for name, url in feeds.items())
    path = tmp / "watcher.yaml"
    path.write_text(
        f"database: {tmp / 'watcher.db'}\nwatchlist: watchlist.yaml\npoll: {{{poll}}}\nfeeds:\n{lines}\n{extra}",
        encoding="utf-8",
    )
    return path
