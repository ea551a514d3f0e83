"""`watcher alerts`, `watcher alerts retry ID` and `watcher channels test NAME` against a real webhook."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from receivers import WebhookSink, webhook_sink

from watcher.cli import main
from watcher.store import Store

T = datetime(2025, 9, 3, 2, 14, tzinfo=UTC)


@pytest.fixture
def hook() -> Iterator[WebhookSink]:
    with webhook_sink() as sink:
        yield sink


def write_config(tmp_path: Path, hook: WebhookSink) -> Path:
    (tmp_path / "watchlist.yaml").write_text(
        "rules:\n  - {id: kim, title: Kim in the news, any: [Kim Jong Un]}\n", encoding="utf-8"
    )
    config = tmp_path / "watcher.yaml"
    config.write_text(
        f"database: {tmp_path / 'w.db'}\nchannels:\n"
        f'  hook: {{url: "{hook.url()}"}}\n'
        "  down: {url: 'json://127.0.0.1:9/nothing-listens-here'}\n"
        "  mail: {url: 'mailto://127.0.0.1:9?from=a@example.org&to=b@example.org&mode=insecure',"
        " mode: digest, digest: {every: 1h}}\n",
        encoding="utf-8",
    )
    return config


def seed(config: Path) -> None:
    """Two alerts as the pipeline writes them: one sent, one failing with an error, one held."""
    with Store.open(config.parent / "w.db") as store:
        payload = {"sources": ["Yonhap", "CNA"], "story": {"id": 1}}
        first = store.create_alert(dedupe_key="watcher-aaa", kind="open", severity="high", title="Kim in Beijing",
                                   payload=payload, channels=["hook"], now=T, rule_id="kim", story_id=1)  # fmt: skip
        second = store.create_alert(dedupe_key="watcher-bbb", kind="update", severity="high", title="Kim in Beijing",
                                    payload=payload, channels=["down"], now=T, rule_id="kim", story_id=1)  # fmt: skip
        assert first and second
        store.db.execute(
            "INSERT INTO deliveries (alert_id, channel, state, next_attempt_at) VALUES (?, 'mail', 'held', ?)",
            [second, "2025-09-03T02:14:00+00:00"],
        )
        (d1,) = [d.id for d in [store.next_delivery("hook")] if d]
        store.mark_sending(d1)
        store.mark_sent(d1, now=T)
        (d2,) = [d.id for d in [store.next_delivery("down")] if d]
        store.mark_sending(d2)
        store.mark_dead(d2, error="gave up after 9 attempts: connection refused")


def test_alerts_lists_each_alert_with_its_deliveries(
    tmp_path: Path, hook: WebhookSink, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, hook)
    seed(config)
    assert main(["alerts", "--config", str(config)]) == 0
    assert capsys.readouterr().out == (
        "#2  2025-09-03 02:14 UTC  update  high  kim  Kim in Beijing\n"
        "     2 sources: Yonhap, CNA  (story 1)  key watcher-bbb\n"
        "     down: dead, 1 attempt: gave up after 9 attempts: connection refused\n"
        "     mail: held for the next digest\n"
        "#1  2025-09-03 02:14 UTC  open  high  kim  Kim in Beijing\n"
        "     2 sources: Yonhap, CNA  (story 1)  key watcher-aaa\n"
        "     hook: sent 2025-09-03 02:14 UTC, 1 attempt\n"
    )


def test_alerts_retry_queues_the_dead_delivery_again(
    tmp_path: Path, hook: WebhookSink, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, hook)
    seed(config)
    assert main(["alerts", "retry", "2", "--config", str(config)]) == 0
    assert capsys.readouterr().out == "alert #2: 1 deliveries queued\n"
    with Store.open(tmp_path / "w.db") as store:
        assert store.db.execute(
            "SELECT channel, state FROM deliveries WHERE alert_id = 2 ORDER BY channel"
        ).fetchall() == [
            ("down", "pending"),
            ("mail", "held"),
        ]
    assert main(["alerts", "retry", "1", "--config", str(config)]) == 1  # already sent: nothing to do
    assert main(["alerts", "retry", "--config", str(config)]) == 2


def test_alerts_on_an_empty_database(
    tmp_path: Path, hook: WebhookSink, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["alerts", "--config", str(write_config(tmp_path, hook))]) == 0
    assert capsys.readouterr().out == "no alerts yet\n"


def test_channels_test_sends_a_message_and_reports_apprise_answer(
    tmp_path: Path, hook: WebhookSink, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, hook)
    assert main(["channels", "test", "hook", "--config", str(config)]) == 0
    assert capsys.readouterr().out == f"hook ({hook.url()}): sent\n"
    assert [p["title"] for p in hook.posts] == ["watcher: test message"]
    assert main(["channels", "test", "down", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("down (json://127.0.0.1:9/nothing-listens-here): failed: ") and "JSON" in out
    assert main(["channels", "test", "hoook", "--config", str(config)]) == 2
    assert "no channel 'hoook' (did you mean 'hook'?)" in capsys.readouterr().err


def test_check_warns_about_a_broken_user_template(
    tmp_path: Path, hook: WebhookSink, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, hook)
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "alert.text.j2").write_text("{{ rule.title }} {% if %}", encoding="utf-8")
    (tmp_path / "templates" / "digest.text.j2").write_text("{{ story_count }} stories\n", encoding="utf-8")
    assert main(["check", "--config", str(config)]) == 0
    err = capsys.readouterr().err
    assert err == (
        f"warning: {tmp_path / 'templates' / 'alert.text.j2'}: TemplateSyntaxError: Expected an expression,"
        " got 'end of statement block' (the shipped template is used instead)\n"
    )
