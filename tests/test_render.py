"""Messages per channel kind: whole texts, escaping of hostile feed text, user templates, real email."""

from __future__ import annotations

import copy
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import apprise
import pytest
from apprise.common import NotifyFormat
from apprise.conversion import convert_between
from apprise.plugins.slack import NotifySlack
from receivers import smtp_sink, wait_for

from watcher.config import ChannelConfig
from watcher.render import Kind, Renderer, defuse, escape_for, kind_for, render, safe_url

WJ = "\u2060"
GUARDIAN = "https://www.theguardian.com/world/2025/sep/03/xi-jinping-putin-kim-military-parade"
JAPAN_TODAY = "https://japantoday.com/category/world/china-parade"

PAYLOAD: dict[str, Any] = {
    "kind": "open",
    "rule": {"id": "trio-together", "title": "Xi, Putin and Kim appear together", "severity": "high"},
    "story": {
        "id": 7,
        "title": "Xi Jinping appears with Vladimir Putin and Kim Jong-un at China military parade",
        "first_seen": "2025-09-03T01:59:00+00:00",
        "last_seen": "2025-09-03T02:14:00+00:00",
        "item_count": 2,
    },
    "items": [
        {
            "title": "Xi Jinping appears with Vladimir Putin and Kim Jong-un at China military parade",
            "link": GUARDIAN,
            "feed": "guardian-world",
            "publisher": "The Guardian",
            "published": "2025-09-03T01:59:00+00:00",
            "tier": "secondary",
        },
        {
            "title": "China's Xi hosts massive military parade with Putin, Kim",
            "link": JAPAN_TODAY,
            "feed": "japantoday",
            "publisher": "Japan Today",
            "published": "2025-09-03T02:14:00+00:00",
            "tier": "secondary",
        },
    ],
    "evidence": [
        {"term": "xi-jinping", "kind": "entity", "field": "title", "text": "Xi Jinping"},
        {"term": "vladimir-putin", "kind": "entity", "field": "title", "text": "Vladimir Putin"},
    ],
    "sources": ["The Guardian", "Japan Today"],
    "copies": [["CNA", "Japan Today"]],
    "primary": [],
}

HOSTILE = "Xi <b>wins</b> @channel <!here> <@U123> [click](https://evil.example) www.evil.org `x` & more"


def hostile_payload() -> dict[str, Any]:
    p = copy.deepcopy(PAYLOAD)
    p["items"][0]["title"] = HOSTILE
    p["story"]["title"] = HOSTILE
    p["sources"] = ["@everyone", "Japan Today"]
    return p


def channel(url: str, **kwargs: Any) -> ChannelConfig:
    return ChannelConfig.model_validate({"url": url, **kwargs})


@pytest.mark.parametrize(
    ("url", "fmt", "expected"),
    [
        pytest.param("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7", "auto", "slack", id="slack"),
        pytest.param("mailto://user:pw@example.org", "auto", "html", id="email"),
        pytest.param("json://127.0.0.1:9/hook", "auto", "text", id="webhook"),
        pytest.param("json://127.0.0.1:9/hook", "markdown", "markdown", id="markdown-asked"),
        pytest.param(
            "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7", "text", "text", id="slack-as-text"
        ),
        pytest.param("mailto://user:pw@example.org", "text", "text", id="email-as-text"),
    ],
)
def test_kind_for(url: str, fmt: str, expected: Kind) -> None:
    assert kind_for(channel(url, format=fmt)) == expected


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        pytest.param("text", f"Xi <b>wins</b> @{WJ}channel <!here> <@{WJ}U123> [click](https:{WJ}//evil{WJ}.example) www{WJ}.evil{WJ}.org `x` & more", id="text"),
        pytest.param("html", f"Xi &lt;b&gt;wins&lt;/b&gt; @{WJ}channel &lt;!here&gt; &lt;@{WJ}U123&gt; [click](https:{WJ}//evil{WJ}.example) www{WJ}.evil{WJ}.org `x` &amp; more", id="html"),
        pytest.param("markdown", f"Xi \\<b\\>wins\\</b\\> @{WJ}channel \\<\\!here\\> \\<@{WJ}U123\\> \\[click\\]\\(https:{WJ}//evil{WJ}.example\\) www{WJ}.evil{WJ}.org \\`x\\` & more", id="markdown"),
        pytest.param("slack", f"Xi \\<b\\>wins\\</b\\> @{WJ}channel \\<\\!here\\> \\<@{WJ}U123\\> \\[click\\]\\(https:{WJ}//evil{WJ}.example\\) www{WJ}.evil{WJ}.org ˋxˋ & more", id="slack"),
    ],
)  # fmt: skip
def test_escape_for(kind: Kind, expected: str) -> None:
    assert escape_for(kind, HOSTILE) == expected


def test_defuse_folds_lines_so_feed_text_cannot_fake_a_new_line() -> None:
    assert defuse("Title\n\nAlert key: fake") == "Title Alert key: fake"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        pytest.param("https://ex.org/a?x=(1)&y=<2>", "https://ex.org/a?x=%281%29&y=%3C2%3E", id="brackets-encoded"),
        pytest.param("https://ex.org/a b|c", "https://ex.org/a%20b%7Cc", id="space-and-pipe-encoded"),
        pytest.param("javascript:alert(1)", None, id="javascript-refused"),
        pytest.param("ftp://ex.org/file", None, id="not-http-refused"),
        pytest.param("", None, id="empty"),
    ],
)  # fmt: skip
def test_safe_url(url: str, expected: str | None) -> None:
    assert safe_url(url) == expected


def test_plain_text_alert_whole() -> None:
    message = Renderer().render(PAYLOAD, kind="text", key="watcher-7-abc")
    assert message.title == (
        "[HIGH] Xi, Putin and Kim appear together: "
        "Xi Jinping appears with Vladimir Putin and Kim Jong-un at China military parade"
    )
    assert message.body_format == "text"
    assert message.body == (
        "Rule: Xi, Putin and Kim appear together [trio-together], severity high\n"
        "Story: Xi Jinping appears with Vladimir Putin and Kim Jong-un at China military parade\n"
        "Sources (2): The Guardian, Japan Today\n"
        "Same wire copy also under: CNA (from Japan Today)\n"
        "- Xi Jinping appears with Vladimir Putin and Kim Jong-un at China military parade\n"
        "  The Guardian, 2025-09-03 01:59 UTC\n"
        f"  {GUARDIAN}\n"
        "- China's Xi hosts massive military parade with Putin, Kim\n"
        "  Japan Today, 2025-09-03 02:14 UTC\n"
        f"  {JAPAN_TODAY}\n"
        'Matched: "Xi Jinping" (title), "Vladimir Putin" (title)\n'
        "Alert key: watcher-7-abc\n"
    )


def test_slack_alert_whole_after_apprise_turns_it_into_mrkdwn() -> None:
    message = Renderer().render(PAYLOAD, kind="slack", key="watcher-7-abc")
    assert message.body_format == "markdown"
    assert NotifySlack._commonmark_to_slack(message.body) == (
        "*HIGH* Xi, Putin and Kim appear together\n"
        f"- <{GUARDIAN}|Xi Jinping appears with Vladimir Putin and Kim Jong-un at China military parade>"
        " (The Guardian)\n"
        f"- <{JAPAN_TODAY}|China's Xi hosts massive military parade with Putin, Kim> (Japan Today)\n"
        "2 sources: The Guardian, Japan Today\n"
        "trio-together · watcher-7-abc\n"
    )


def test_update_title_says_update_and_the_count() -> None:
    update = {**PAYLOAD, "kind": "update", "update": {"threshold": 10, "sources": 11}}
    message = Renderer().render(update, kind="text", key="k")
    assert message.title.startswith("[HIGH] UPDATE Xi, Putin and Kim appear together: 11 sources: ")
    assert message.body.startswith("UPDATE: 11 independent sources now report this story (threshold 10).\n")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.hrefs += [v or "" for k, v in attrs if k == "href"]


def _links(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


def test_html_alert_links_only_to_the_items_own_pages() -> None:
    body = Renderer().render(hostile_payload(), kind="html", key="k").body
    parsed = _links(body)
    assert parsed.hrefs == [GUARDIAN, JAPAN_TODAY]
    assert "b" not in parsed.tags
    assert "@everyone" not in body and "@channel" not in body


def test_markdown_alert_links_only_to_the_items_own_pages() -> None:
    body = Renderer().render(hostile_payload(), kind="markdown", key="k").body
    html = convert_between(NotifyFormat.MARKDOWN, NotifyFormat.HTML, body)
    parsed = _links(html)
    assert parsed.hrefs == [GUARDIAN, JAPAN_TODAY]
    assert "b" not in parsed.tags


def test_slack_alert_cannot_mention_or_link_after_apprise() -> None:
    body = Renderer().render(hostile_payload(), kind="slack", key="k").body
    mrkdwn = NotifySlack._commonmark_to_slack(body)
    assert mrkdwn.count("<") == 2  # the two items' own links, nothing else opens a Slack entity
    assert f"<{GUARDIAN}|" in mrkdwn and f"<{JAPAN_TODAY}|" in mrkdwn
    assert "@everyone" not in mrkdwn and "@channel" not in mrkdwn


DIGEST: dict[str, Any] = {
    "kind": "digest",
    "period": {"start": "2025-09-03T00:00:00+00:00", "end": "2025-09-04T00:00:00+00:00"},
    "rules": [
        {
            "id": "trio-together",
            "title": "Xi, Putin and Kim appear together",
            "severity": "high",
            "stories": [
                {
                    "id": 7,
                    "title": "Xi Jinping appears with Vladimir Putin and Kim Jong-un at China military parade",
                    "sources": ["The Guardian", "Japan Today"],
                    "entries": [
                        {"title": "Xi Jinping appears", "link": GUARDIAN, "publisher": "The Guardian"},
                        {"title": "China's Xi hosts", "link": JAPAN_TODAY, "publisher": "Japan Today"},
                    ],
                }
            ],
        },
        {
            "id": "weapons-display",
            "title": "New weapons shown",
            "severity": "medium",
            "stories": [
                {
                    "id": 9,
                    "title": "China shows off drones, missiles and other hardware",
                    "sources": ["CNA"],
                    "entries": [
                        {
                            "title": "China shows off drones",
                            "link": "https://cna.example/d",
                            "publisher": "CNA",
                        }
                    ],
                }
            ],
        },
    ],
}


def test_plain_text_digest_whole() -> None:
    message = Renderer().render(DIGEST, kind="text", key="watcher-digest-3")
    assert message.title == "watcher digest: 2 stories (2025-09-03 00:00 UTC to 2025-09-04 00:00 UTC)"
    assert message.body == (
        "2 stories from 2025-09-03 00:00 UTC to 2025-09-04 00:00 UTC\n"
        "\n"
        "Xi, Putin and Kim appear together [trio-together], severity high\n"
        "- Xi Jinping appears with Vladimir Putin and Kim Jong-un at China military parade\n"
        "  2 sources: The Guardian, Japan Today\n"
        f"  {GUARDIAN} (The Guardian)\n"
        f"  {JAPAN_TODAY} (Japan Today)\n"
        "\n"
        "New weapons shown [weapons-display], severity medium\n"
        "- China shows off drones, missiles and other hardware\n"
        "  1 source: CNA\n"
        "  https://cna.example/d (CNA)\n"
        "\n"
        "Digest key: watcher-digest-3\n"
    )


def test_user_template_replaces_the_shipped_one(tmp_path: Path) -> None:
    (tmp_path / "alert.text.j2").write_text(
        "{{ rule.title }} ({{ sources|length }} sources) {{ story.title }}\n"
    )
    message = Renderer(tmp_path).render(hostile_payload(), kind="text", key="k")
    assert message.body == f"Xi, Putin and Kim appear together (2 sources) {escape_for('text', HOSTILE)}\n"


def test_a_failing_user_template_falls_back_and_is_reported(tmp_path: Path) -> None:
    bad = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
    (tmp_path / "alert.text.j2").write_text(bad)
    (tmp_path / "title.j2").write_text("{% if %}")
    renderer = Renderer(tmp_path)
    message = renderer.render(PAYLOAD, kind="text", key="watcher-7-abc")
    assert message.body == Renderer().render(PAYLOAD, kind="text", key="watcher-7-abc").body
    assert message.title.startswith("[HIGH] Xi, Putin and Kim appear together")
    problems = renderer.check([PAYLOAD])
    assert [p.split(": ")[0] for p in problems] == [
        str(tmp_path / "alert.text.j2"),
        str(tmp_path / "title.j2"),
    ]
    assert "SecurityError: access to attribute '__class__'" in problems[0]
    assert "TemplateSyntaxError" in problems[1]


class _Delivery:
    kind = "open"
    dedupe_key = "watcher-7-abc"
    payload = PAYLOAD


def test_render_for_an_outbox_delivery() -> None:
    title, body, body_format = render(
        _Delivery(), channel("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7")
    )
    assert (title.startswith("[HIGH]"), body_format) == (True, "markdown")
    assert body.endswith("trio-together · watcher-7-abc\n")


def test_email_through_a_real_smtp_server_has_html_and_plain_text_parts() -> None:
    with smtp_sink() as sink:
        title, body, body_format = render(_Delivery(), channel(sink.url()))
        app = apprise.Apprise()
        assert app.add(sink.url())
        assert app.notify(title=title, body=body, body_format=body_format)
        assert wait_for(lambda: len(sink.messages) == 1)
        message = sink.messages[0]
        plain = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        assert plain is not None and html is not None
        assert str(message["Subject"]) == title
        assert _links(html.get_content()).hrefs == [GUARDIAN, JAPAN_TODAY]
        text = plain.get_content()
        assert GUARDIAN in text and JAPAN_TODAY in text and "Alert key: watcher-7-abc" in text
