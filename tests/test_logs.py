"""Log lines as a user reads them: in a terminal, in journald, as JSON; never with a secret in them."""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from watcher.config import load_config
from watcher.logs import channel_secrets, redact_url, redactor, setup_logging, under_journald


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield
    for h in list(root.handlers):
        if h not in handlers:
            root.removeHandler(h)
    root.setLevel(level)
    redactor.set_secrets(())


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        pytest.param(
            "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#signals",
            "slack://T...2/A...D/T...Q/#signals",
            id="slack-tokens",
        ),
        pytest.param(
            "mailtos://desk:hunter22@smtp.example.org?to=desk@example.org",
            "mailtos://desk:****@smtp.example.org?to=desk@example.org",
            id="mail-password",
        ),
        pytest.param(
            "tgram://123456789:AAHfRi3gWx9Yz/-100200300",
            "tgram://1...9:A...z/-...0",
            id="telegram-token-with-colon",
        ),
        pytest.param(
            "json://127.0.0.1:8080/hook?token=abc123&format=text",
            "json://127.0.0.1:8080/h...k?token=****&format=text",
            id="webhook-query-token",
        ),
        pytest.param(
            "https://reader:s3cret@feeds.example.org/rss.xml",
            "https://reader:****@feeds.example.org/rss.xml",
            id="feed-password",
        ),
        pytest.param(
            "https://en.yna.co.kr/RSS/northkorea.xml",
            "https://en.yna.co.kr/RSS/northkorea.xml",
            id="plain-feed-url",
        ),
        pytest.param(
            "https://x.example/api?api_key=K3Y&page=2",
            "https://x.example/api?api_key=****&page=2",
            id="api-key",
        ),
        pytest.param(
            "slack://${SLACK_TOKEN}/#signals", "slack://${SLACK_TOKEN}/#signals", id="env-reference-kept"
        ),
        pytest.param("console://", "console://", id="console"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def log_to_string(fmt: str = "text", *, journal: bool = False) -> tuple[io.StringIO, logging.Logger]:
    out = io.StringIO()
    setup_logging("info", fmt, stream=out, journal=journal)  # type: ignore[arg-type]
    return out, logging.getLogger("watcher.test")


def test_urls_in_any_log_line_are_redacted() -> None:
    out, log = log_to_string()
    log.warning(
        "channel slack (%s) failed; retry in 30s",
        "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ/#signals",
    )
    line = out.getvalue()
    assert line.endswith(
        " WARNING watcher.test: channel slack (slack://T...2/A...D/T...Q/#signals) failed; retry in 30s\n"
    )
    assert "TIiajkdnlazkcOXrIdevi7FQ" not in line


def test_configured_secrets_never_show(tmp_path: Path) -> None:
    cfg = tmp_path / "watcher.yaml"
    cfg.write_text(
        "channels:\n  hook:\n    url: https://hooks.example.org/services/${HOOK_TOKEN}\n"
        "  mail:\n    url: mailtos://${SMTP_USER}:${SMTP_PASSWORD}@smtp.example.org\n"
    )
    loaded = load_config(
        cfg, environ={"HOOK_TOKEN": "Zq9xT0kenValue", "SMTP_USER": "desk", "SMTP_PASSWORD": "pa55word!"}
    )
    secrets = channel_secrets(loaded.config.channels)
    assert secrets == {
        "https://hooks.example.org/services/Zq9xT0kenValue",
        "Zq9xT0kenValue",
        "mailtos://desk:pa55word!@smtp.example.org",
        "desk",
        "pa55word!",
    }
    redactor.set_secrets(secrets)
    out, log = log_to_string()
    log.error("send failed: server said token Zq9xT0kenValue is revoked (password pa55word!)")
    try:
        raise RuntimeError("POST https://hooks.example.org/services/Zq9xT0kenValue -> 403")
    except RuntimeError:
        log.exception("send crashed")
    text = out.getvalue()
    assert "Zq9xT0kenValue" not in text and "pa55word!" not in text
    assert "server said token **** is revoked (password ****)" in text
    assert "RuntimeError: POST **** -> 403" in text


def test_feed_text_cannot_forge_a_log_line() -> None:
    out, log = log_to_string()
    log.info("feed kcna: %s", "Title\n2025-09-03T09:00:00 ERROR watcher: fake\x1b[31m")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith(
        "watcher.test: feed kcna: Title\\n2025-09-03T09:00:00 ERROR watcher: fake\\x1b[31m"
    )


def test_journal_lines_carry_priority_and_no_timestamp() -> None:
    out, log = log_to_string(journal=True)
    log.warning("feed kcna: HTTP 503 (failure 1 in a row)")
    log.info("watcher running")
    log.debug("not shown at info")
    assert (
        out.getvalue()
        == "<4>watcher.test: feed kcna: HTTP 503 (failure 1 in a row)\n<6>watcher.test: watcher running\n"
    )


def test_journald_detected_from_journal_stream(tmp_path: Path) -> None:
    with open(tmp_path / "stderr", "w") as f:
        st = os.fstat(f.fileno())
        assert under_journald(f, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"})
        assert not under_journald(f, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"})
        assert not under_journald(f, {})
    assert not under_journald(io.StringIO(), {"JOURNAL_STREAM": "1:2"})


def test_json_lines() -> None:
    out, log = log_to_string("json")
    log.warning("feed %s: %s", "kcna", "HTTP 503", extra={"feed": "kcna"})
    record = json.loads(out.getvalue())
    assert record.pop("time").endswith("+00:00")
    assert record == {
        "level": "warning",
        "logger": "watcher.test",
        "message": "feed kcna: HTTP 503",
        "feed": "kcna",
    }


def test_setup_twice_keeps_one_handler_and_other_handlers() -> None:
    root = logging.getLogger()
    before = len(root.handlers)
    setup_logging("info", "text", stream=io.StringIO())
    setup_logging("debug", "json", stream=io.StringIO())
    assert len(root.handlers) == before + 1
    assert root.level == logging.DEBUG
    assert logging.getLogger("httpx").level == logging.WARNING


@pytest.mark.parametrize(("level", "fmt"), [("loud", "text"), ("info", "xml")])
def test_bad_level_or_format(level: str, fmt: str) -> None:
    with pytest.raises(ValueError, match="use"):
        setup_logging(level, fmt, stream=io.StringIO())  # type: ignore[arg-type]
