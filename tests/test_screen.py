"""Screening bytes before any XML parser: entity bombs, quadratic blow-ups and external entities.

The attacks are checked where they would do harm: in lxml, in feedparser (whose own defences stop
billion laughs but not a quadratic blow-up) and in parse_feed, with a real HTTP server on loopback
counting any request an external entity would make.
"""

from __future__ import annotations

import codecs
import io
import os
import threading
import tracemalloc
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import feedparser
import pytest
from lxml import etree

from watcher.errors import ParseError
from watcher.parse import parse_feed
from watcher.screen import foreign_encoding, opaque_encoding, prolog, screen, to_utf8

SHARED = Path(os.environ.get("WATCHER_SHARED", Path(__file__).resolve().parents[2] / "shared"))
DEFUSED = SHARED / "data" / "pathological" / "defusedxml-xmltestdata"
ENTITIES_LEFT = "removed entity declarations from the document type (an internal DTD subset); " \
    "references to those entities stay unexpanded"  # fmt: skip


def rss(doctype: str, description: str, *, prolog: str = '<?xml version="1.0" encoding="utf-8"?>\n') -> bytes:
    return (
        f"{prolog}{doctype}<rss version='2.0'><channel><title>Wire</title><item><title>t</title>"
        f"<guid isPermaLink='false'>g1</guid><description>{description}</description></item></channel></rss>"
    ).encode()


def quadratic(entity_size: int = 5_000, references: int = 2_000) -> bytes:
    """Laid out like defusedxml's quadratic.xml: feedparser keeps an entity declared on its own line."""
    return rss(f'<!DOCTYPE rss [\n<!ENTITY a "{"B" * entity_size}">\n]>\n', "&a;" * references)


# -- normal feeds pass untouched ----------------------------------------------------------------------------


def test_a_normal_feed_comes_back_as_the_same_object_without_warnings() -> None:
    body = rss("", "Kim arrives in Beijing") + b"<!-- a trailing comment with <!ENTITY x 'y'> -->"
    screened, warnings = screen(body)
    assert screened is body
    assert warnings == []


def test_a_doctype_without_entities_is_kept() -> None:
    body = rss(
        '<!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN" "http://x.invalid/rss.dtd">', "d"
    )
    assert screen(body) == (body, [])


# -- entity declarations are removed wherever a parser would read them ------------------------------------


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE rss [<!ENTITY a "x">]>',
        '<!DOCTYPE rss [\n<!ENTITY a "x">\n<!ENTITY b "&a;&a;">\n]>',
        '<!DOCTYPE rss [<!ENTITY a "]> <rss> ">]>',  # a quoted ']>' does not end the subset
        "<!DOCTYPE rss [<!-- ]> --><!ENTITY a 'x'>]>",  # nor does one in a comment
        '<!DOCTYPE rss SYSTEM "about:legacy" [<!ENTITY % p "x">]>',
        '<!doctype rss [<!ENTITY a "x">]>',
    ],
)
def test_a_doctype_that_declares_entities_is_removed(doctype: str) -> None:
    body = rss(doctype, "&a;")
    screened, warnings = screen(body)
    assert screened == rss("", "&a;")
    assert warnings == [ENTITIES_LEFT]


def test_the_doctype_is_found_after_comments_processing_instructions_and_stray_text() -> None:
    head = '<?xml version="1.0"?>\n<!-- <rss> in a comment -->\n<?xml-stylesheet href="s.xsl"?>\njunk '
    body = rss('<!DOCTYPE rss [<!ENTITY a "x">]>', "&a;", prolog=head)
    assert screen(body) == (rss("", "&a;", prolog=head), [ENTITIES_LEFT])


def test_an_entity_declared_outside_any_doctype_is_removed_too() -> None:
    """feedparser's lenient parser collects ``<!ENTITY`` from anywhere before the first element."""
    body = b'<!ENTITY a "' + b"B" * 100 + b'">\n<rss><channel><title>&a;</title></channel></rss>'
    screened, warnings = screen(body)
    assert screened == b"\n<rss><channel><title>&a;</title></channel></rss>"
    assert warnings == [ENTITIES_LEFT]


def test_thousands_of_stray_declarations_go_in_one_pass() -> None:
    body = b'<!ENTITY a "x">' * 10_000 + b"<rss><channel><title>&a;</title></channel></rss>" + b" " * 2**20
    screened, warnings = screen(body)
    assert screened == b"<rss><channel><title>&a;</title></channel></rss>" + b" " * 2**20
    assert warnings == [ENTITIES_LEFT]


def test_prolog_reports_where_the_root_starts_and_each_doctype() -> None:
    body = b'<?xml version="1.0"?><!-- c --><!DOCTYPE rss [<!ENTITY a "<x>">]><rss/>'
    root, doctypes = prolog(body)
    assert body[root:] == b"<rss/>"
    assert [body[s:e] for s, e in doctypes] == [b'<!DOCTYPE rss [<!ENTITY a "<x>">]>']


# -- the attacks themselves ------------------------------------------------------------------------------


def test_feedparser_alone_expands_a_quadratic_blow_up_but_not_after_screening() -> None:
    body = quadratic()
    unscreened = feedparser.parse(io.BytesIO(body)).entries[0].summary
    assert len(unscreened) == 5_000 * 2_000  # 10 MB of text from a 10 KB body
    parsed = parse_feed(body, feed="bomb", url="https://bomb.example/rss")
    assert parsed.items[0].summary == ("&a;" * 2_000)[:1_999] + "…"  # the references, left as text
    assert parsed.warnings == (
        ENTITIES_LEFT,
        "not well-formed XML at line 3: undefined entity; read leniently",
    )


def test_a_quadratic_blow_up_stays_within_a_few_megabytes() -> None:
    body = quadratic(entity_size=5_000, references=20_000)  # 100 MB and 324 MB of memory in feedparser alone
    tracemalloc.start()
    try:
        parsed = parse_feed(body, feed="bomb", url="https://bomb.example/rss")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20 * 2**20
    assert len(parsed.items[0].summary) <= 2_000


def test_billion_laughs_do_not_expand() -> None:
    levels = ['<!ENTITY lol0 "lol">'] + [f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)]
    body = rss("<!DOCTYPE rss [" + "".join(levels) + "]>", "&lol9;")
    parsed = parse_feed(body, feed="bomb", url="https://bomb.example/rss")
    assert parsed.items[0].summary == "&lol9;"


class _Canary(BaseHTTPRequestHandler):
    hits: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Canary.hits.append(self.path)
        body = b'<!ENTITY leaked "LEAKED">' if self.path.endswith(".dtd") else b"LEAKED"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def canary() -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 that records every request made to it."""
    _Canary.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Canary)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_external_entities_are_neither_fetched_nor_read(canary: str, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET-FILE-CONTENT")
    dtd = tmp_path / "evil.dtd"
    dtd.write_text('<!ENTITY fromdtd "SECRET-FROM-DTD">')
    bodies = [
        rss(f'<!DOCTYPE rss [<!ENTITY web SYSTEM "{canary}/web"><!ENTITY file SYSTEM "file://{secret}">]>',
            "&web; &file;"),
        rss(f'<!DOCTYPE rss [<!ENTITY % remote SYSTEM "{canary}/remote.dtd"> %remote;]>', "&leaked;"),
        rss(f'<!DOCTYPE rss SYSTEM "{canary}/external.dtd">', "&leaked;"),
        rss(f'<!DOCTYPE rss SYSTEM "file://{dtd}">', "&fromdtd;"),
    ]  # fmt: skip
    for body in bodies:
        try:
            parsed = parse_feed(body, feed="xxe", url="https://xxe.example/rss")
        except ParseError:
            continue
        text = repr(parsed)
        assert "LEAKED" not in text and "SECRET" not in text
    assert _Canary.hits == []
    with urllib.request.urlopen(f"{canary}/probe") as response:  # the canary does record what reaches it
        assert response.read() == b"LEAKED"
    assert _Canary.hits == ["/probe"]


@pytest.mark.corpus
@pytest.mark.parametrize(
    "name",
    ["xmlbomb.xml", "xmlbomb2.xml", "quadratic.xml", "cyclic.xml", "external.xml", "external_file.xml"],
)
def test_the_defusedxml_bombs_lose_their_declarations(name: str) -> None:
    path = DEFUSED / name
    if not path.is_file():
        pytest.skip("needs /work/shared/data (the shared corpus)")
    screened, warnings = screen(path.read_bytes())
    assert b"<!ENTITY" not in screened
    assert warnings == [ENTITIES_LEFT]
    root = etree.fromstring(screened, etree.XMLParser(recover=True, resolve_entities=False, no_network=True))
    assert len(etree.tostring(root)) < 4_000  # nothing expanded


@pytest.mark.corpus
def test_the_defusedxml_quadratic_file_through_feedparser_stays_small() -> None:
    path = DEFUSED / "quadratic.xml"
    if not path.is_file():
        pytest.skip("needs /work/shared/data (the shared corpus)")
    screened, _ = screen(path.read_bytes())
    tracemalloc.start()
    try:
        result = feedparser.parse(io.BytesIO(screened))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20
    assert "BBBBBBBB" not in repr(result)


# -- bodies whose markup is not plain ASCII bytes ---------------------------------------------------------


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
def test_a_bomb_in_utf16_or_utf32_is_decoded_screened_and_returned_as_utf8(codec: str) -> None:
    bom = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE,
           "utf-32-le": codecs.BOM_UTF32_LE, "utf-32-be": codecs.BOM_UTF32_BE}[codec]  # fmt: skip
    text = rss('<!DOCTYPE rss [<!ENTITY a "' + "B" * 1000 + '">]>', "&a;&a;", prolog="").decode()
    screened, warnings = screen(bom + text.encode(codec))
    assert screened == b"<?xml version='1.0' encoding='utf-8'?>" + rss("", "&a;&a;", prolog="")
    assert warnings == [ENTITIES_LEFT]


def test_a_doctype_hidden_in_utf7_is_found() -> None:
    """UTF-7 writes '<' as '+ADw-': a byte-level search would miss the DOCTYPE; the parsers would not."""
    text = '<!DOCTYPE rss [<!ENTITY a "' + "B" * 1000 + '">]><rss><channel><title>&a;</title></channel></rss>'
    body = b'<?xml version="1.0" encoding="utf-7"?>' + text.encode("utf-7")
    assert opaque_encoding(body) == "utf-7"
    screened, warnings = screen(body)
    assert b"<!ENTITY" not in screened and b"BBBB" not in screened
    assert warnings == [ENTITIES_LEFT]
    assert "BBBB" not in feedparser.parse(io.BytesIO(screened)).feed.get("title", "")


def test_utf16_without_a_byte_order_mark_is_recognised() -> None:
    body = "<rss version='2.0'><channel><title>Без BOM</title></channel></rss>".encode("utf-16-le")
    assert foreign_encoding(body) == "utf-16"
    assert to_utf8(body) == (
        "<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>Без BOM</title>"
        "</channel></rss>".encode(),
        None,
    )


def test_windows_1251_is_converted_like_feedparser_converts_it() -> None:
    body = '<?xml version="1.0" encoding="windows-1251"?><rss><channel><title>Новости</title></channel></rss>'
    converted, problem = to_utf8(body.encode("cp1251"))
    assert converted.decode("utf-8").endswith("<rss><channel><title>Новости</title></channel></rss>")
    assert problem is None
    assert opaque_encoding(body.encode("cp1251")) is None  # ASCII-transparent: screened as bytes


@pytest.mark.parametrize("pad", [b"", b" "], ids=["odd-length", "even-length"])
def test_a_utf16_declaration_in_one_byte_text_reads_the_same_whatever_the_length(pad: bytes) -> None:
    """A real feed (fastfeedparser 9e0834333e854116) declares UTF-16 but is UTF-8: one more byte must not
    turn it into garbage (UTF-16 decoding only fails on odd lengths)."""
    from watcher.parse import parse_feed

    body = (
        b'<?xml version="1.0" encoding="utf-16"?>\n<rss version="2.0"><channel><title>T</title>'
        b"<item><title>Kim \xea\xb9\x80\xec\xa0\x95\xec\x9d\x80</title><guid>1</guid></item></channel></rss>\n"
    ) + pad
    parsed = parse_feed(body, feed="f", url="http://x/")
    assert [i.title for i in parsed.items] == ["Kim 김정은"]
    assert parsed.warnings == (
        "character encoding: declared as UTF-16 or UTF-32 in one-byte text; read as utf-8",
    )
