"""Config loading: positioned errors, ${ENV} secrets, defaults, path resolution."""

from __future__ import annotations

from pathlib import Path

import pytest

from watcher.config import load_config, resolve_config_path
from watcher.errors import ConfigError
from watcher.units import parse_duration, parse_size


def write(tmp_path: Path, text: str, name: str = "watcher.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=environ or {})
    return [str(p) for p in info.value.problems]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("1h", 3600), ("2d", 172800), ("1h30m", 5400), (45, 45), ("250ms", 0.25)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "5 minutes", "m5", "-1s", "1h junk"])
def test_bad_durations_say_how_to_write_them(bad: str) -> None:
    with pytest.raises(ValueError, match=r"write it as|cannot"):
        parse_duration(bad)


def test_sizes() -> None:
    assert [parse_size(s) for s in ("10MB", "512KiB", "1000", 7)] == [10_000_000, 524_288, 1000, 7]


def test_minimal_config_gets_defaults_and_resolves_paths(tmp_path: Path) -> None:
    path = write(tmp_path, "feeds:\n  - name: a\n    url: https://example.org/rss\n")
    loaded = load_config(path, environ={})
    assert loaded.watchlist == tmp_path / "watchlist.yaml"
    assert loaded.database == Path.cwd() / "var/watcher.db"
    assert loaded.config.poll.interval == 600
    assert loaded.feed_interval(loaded.config.feeds[0]) == 600
    assert loaded.config.feeds[0].publisher_name == "example.org"
    assert loaded.warnings == ()


def test_state_directory_holds_relative_database(tmp_path: Path) -> None:
    path = write(tmp_path, "database: w.db\n")
    loaded = load_config(path, environ={"STATE_DIRECTORY": "/var/lib/watcher"})
    assert loaded.database == Path("/var/lib/watcher/w.db")


def test_unknown_keys_are_positioned_with_a_hint(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "databse: x.db\nfeeds:\n  - name: a\n    url: https://example.org/rss\n    intervall: 5m\npoll:\n  jiter: 1s\n",
    )
    shown = str(path)
    assert problems(path) == [
        f"{shown}:1:1: unknown key 'databse' (did you mean 'database'?)",
        f"{shown}:5:5: unknown key 'intervall' (did you mean 'interval'?)",
        f"{shown}:7:3: unknown key 'jiter' (did you mean 'jitter'?)",
    ]


def test_bad_values_are_positioned(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "feeds:\n  - name: a\n    url: ftp://example.org/x\n    interval: 5 minutes\n  - name: a\n    url: https://e.org/\n",
    )
    shown = str(path)
    got = problems(path)
    assert got[0].startswith(f"{shown}:3:10: feeds.0.url: a feed url must be http:// or https://")
    assert got[1].startswith(f"{shown}:4:15: feeds.0.interval: cannot read duration '5 minutes'")
    assert len(got) == 2  # the duplicate name is reported once the entries themselves are valid


def test_duplicate_feed_names(tmp_path: Path) -> None:
    path = write(
        tmp_path, "feeds:\n  - name: a\n    url: https://e.org/1\n  - name: a\n    url: https://e.org/2\n"
    )
    assert problems(path) == [f"{path}:4:11: duplicate feed name 'a' (also feed #1)"]


def test_invalid_yaml_names_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "feeds:\n  - name: a\n   url: x\n")
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:3:")
    assert "invalid YAML" in problem


def test_channel_urls_expand_env_and_never_show_the_secret(tmp_path: Path) -> None:
    path = write(tmp_path, "channels:\n  slack:\n    url: slack://${SLACK_TOKEN}/#news\n    severity: high\n")
    loaded = load_config(path, environ={"SLACK_TOKEN": "T000/B000/XXXXSECRET"})
    channel = loaded.config.channels["slack"]
    assert channel.url.get_secret_value() == "slack://T000/B000/XXXXSECRET/#news"
    assert channel.display_url == "slack://${SLACK_TOKEN}/#news"
    assert "XXXXSECRET" not in repr(loaded.config)
    assert channel.severity == "high"


def test_missing_env_is_a_positioned_problem(tmp_path: Path) -> None:
    path = write(tmp_path, "channels:\n  slack:\n    url: slack://${SLACK_TOKEN}/#news\n")
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:3:5: channels.slack: ${{SLACK_TOKEN}} is not set: export SLACK_TOKEN=")


def test_systemd_credentials_fill_env_refs(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "SMTP_PASSWORD").write_text("hunter2hunter2\n")
    path = write(tmp_path, "channels:\n  mail: 'mailtos://me:${SMTP_PASSWORD}@example.org'\n")
    loaded = load_config(path, environ={"CREDENTIALS_DIRECTORY": str(creds)})
    assert loaded.config.channels["mail"].url.get_secret_value() == "mailtos://me:hunter2hunter2@example.org"


def test_fast_remote_polling_warns_but_loopback_does_not(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "feeds:\n  - {name: local, url: 'http://127.0.0.1:8000/a', interval: 1s}\n"
        "  - {name: remote, url: 'https://example.org/a', interval: 10s}\n",
    )
    loaded = load_config(path, environ={})
    assert len(loaded.warnings) == 1
    assert "remote" in loaded.warnings[0] and "every 10s" in loaded.warnings[0]


def test_interval_below_one_second_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "poll:\n  interval: 500ms\n")
    (problem,) = problems(path)
    assert "at least 1s" in problem


def test_digest_channel_needs_a_schedule(tmp_path: Path) -> None:
    path = write(tmp_path, "channels:\n  d:\n    url: json://127.0.0.1:9/\n    mode: digest\n")
    (problem,) = problems(path)
    assert problem.startswith(f"{path}:4:11: channel 'd' is a digest")


def test_config_path_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert resolve_config_path(None, {}) is None
    assert resolve_config_path(None, {"WATCHER_CONFIG": "/x.yaml"}) == Path("/x.yaml")
    assert resolve_config_path("a.yaml", {"WATCHER_CONFIG": "/x.yaml"}) == Path("a.yaml")
    (tmp_path / "config").mkdir()
    (tmp_path / "config/watcher.yaml").write_text("{}\n")
    assert resolve_config_path(None, {}) == Path("config/watcher.yaml")


def test_digest_and_quiet_hours_times_are_checked_where_written(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "channels:\n  d:\n    url: json://127.0.0.1:9/\n    mode: digest\n    digest: {at: '7am', timezone: Asia/Seol}\n"
        "    quiet_hours: {start: '22:00', end: '25:00'}\n",
    )
    got = problems(path)
    assert [p.split(": ", 1)[0].rsplit(":", 2)[1:] for p in got] == [["5", "18"], ["5", "35"], ["6", "40"]]
    assert "a time of day is written HH:MM" in got[0]
    assert "unknown time zone 'Asia/Seol'" in got[1]


def test_silence_thresholds_reach_the_ops_policy(tmp_path: Path) -> None:
    from watcher.ops import policy_for

    path = write(tmp_path, "feed_failure_alert: 2h\nsilence: {rule_quiet: 12h, feed_ratio: 0.1}\n")
    policy = policy_for(load_config(path, environ={}).config)
    assert (policy.feed_failure_after, policy.rule_quiet, policy.feed_ratio) == (7200, 43200, 0.1)
