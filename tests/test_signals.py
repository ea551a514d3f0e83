"""Stories to alerts on a real SQLite file: one alert per story, corroboration, updates, digests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from watcher.config import ChannelConfig, FeedConfig
from watcher.digests import make_digests
from watcher.models import Evidence, Item, Match, StoredItem
from watcher.rules import Rule
from watcher.signals import Outcome, Signals
from watcher.store import Store

T0 = datetime(2025, 9, 3, 1, 30, tzinfo=UTC)
TRIO = ("xi-jinping", "vladimir-putin", "kim-jong-un")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "watcher.db") as s:
        yield s


def rule(**kwargs: Any) -> Rule:
    return Rule.model_validate(
        {"id": "trio-together", "title": "Xi, Putin and Kim appear together", "severity": "high",
         "any": ["parade"], **kwargs}
    )  # fmt: skip


def feed(name: str, publisher: str | None = None, tier: str = "secondary") -> FeedConfig:
    return FeedConfig(name=name, url=f"https://{name}.example/rss", publisher=publisher, tier=tier)  # type: ignore[arg-type]


def channel(url: str = "json://127.0.0.1:9/hook", **kwargs: Any) -> ChannelConfig:
    return ChannelConfig.model_validate({"url": url, **kwargs})


def match(entities: tuple[str, ...] = TRIO, severity: str = "high") -> Match:
    evidence = tuple(
        Evidence(term=e, kind="entity", field="title", start=0, end=1, text=e, snippet=e, entity=e)
        for e in entities
    )
    return Match(rule_id="trio-together", severity=severity, evidence=evidence)  # type: ignore[arg-type]


class Feeder:
    """Stores items as the pipeline does and hands each match to Signals."""

    def __init__(self, store: Store, signals: Signals, rule: Rule) -> None:
        self.store, self.signals, self.rule = store, signals, rule
        self.n = 0

    def report(
        self,
        f: FeedConfig,
        title: str,
        *,
        minutes: float,
        entities: tuple[str, ...] = TRIO,
        severity: str = "high",
    ) -> Outcome:
        self.n += 1
        when = T0 + timedelta(minutes=minutes)
        item = Item(feed=f.name, key=f"{f.name}-{self.n}", link=f"https://{f.name}.example/{self.n}",
                    title=title, summary="", published=when)  # fmt: skip
        with self.store.db.atomic():
            stored = self.store.store_items([item], now=when)[0]
            return self.signals.on_match(
                rule=self.rule, feed=f, stored=stored, match=match(entities, severity), now=when
            )


def alerts(store: Store) -> list[tuple[str, int | None, list[str]]]:
    rows = store.db.execute("SELECT kind, story_id, payload FROM alerts ORDER BY id").fetchall()
    return [(kind, sid, json.loads(p).get("sources", [])) for kind, sid, p in rows]


HEADLINES = [
    ("guardian", "The Guardian", "Xi Jinping appears with Vladimir Putin and Kim Jong-un at China military parade"),
    ("japantoday", "Japan Today", "China's Xi hosts massive military parade with Putin, Kim"),
    ("sky", "Sky News", "Xi hails 'great regeneration of China' with dramatic show of military might"),
    ("aljazeera", "Al Jazeera", "China's Xi oversees massive military parade with Putin, Kim in attendance"),
    ("yonhap-en", "Yonhap", "Xi, Putin, Kim stand together on Tiananmen rostrum"),
    ("yonhap-ko", "Yonhap", "시진핑·푸틴·김정은, 톈안먼 망루에 나란히"),
    ("tass", "TASS", "Си Цзиньпин, Путин и Ким Чен Ын на параде в Пекине"),
    ("cna", "CNA", "China stages grand WWII military parade with steel, symbolism and convening power"),
    ("straits", "Straits Times", "China stages grand WWII military parade with steel, symbolism and convening power"),
    ("nbc", "NBC News", "China parades its military might, and its friends, in a defiant display for the U.S."),
    ("bbc", "BBC News", "Putin and Kim join Xi for China's biggest ever military parade"),
    ("nyt", "The New York Times", "Xi Parades Firepower With Putin and Kim at His Side"),
    ("kyodo", "Kyodo", "習近平氏、プーチン氏と金正恩氏と並び軍事パレード"),
]  # fmt: skip


def test_many_outlets_make_one_alert_then_one_update_per_threshold(store: Store) -> None:
    signals = Signals(store, channels={"ops": channel()})
    feeder = Feeder(store, signals, rule())
    outcomes = [feeder.report(feed(n, p), t, minutes=3 * i) for i, (n, p, t) in enumerate(HEADLINES)]
    assert [(o.story_id, o.kind) for o in outcomes] == [
        (1, "open"), (1, None), (1, "update"), (1, None), (1, None), (1, None), (1, None),
        (1, None), (1, None), (1, None), (1, None), (1, "update"), (1, None),
    ]  # fmt: skip
    # Yonhap's two feeds count once, the Straits Times' wire copy of CNA does not count
    kinds = [(kind, len(sources)) for kind, _, sources in alerts(store)]
    assert kinds == [("open", 1), ("update", 3), ("update", 10)]
    deliveries = store.db.execute("SELECT channel, state FROM deliveries").fetchall()
    assert deliveries == [("ops", "pending")] * 3
    story = store.db.execute("SELECT item_count, source_count, held FROM stories").fetchall()
    assert story == [(13, 11, None)]


def test_the_update_lists_the_items_since_the_last_message(store: Store) -> None:
    feeder = Feeder(store, Signals(store, channels={}), rule())
    for i, (n, p, t) in enumerate(HEADLINES[:3]):
        feeder.report(feed(n, p), t, minutes=i)
    payload = json.loads(store.db.execute("SELECT payload FROM alerts WHERE kind = 'update'").fetchone()[0])
    assert [i["publisher"] for i in payload["items"]] == ["Japan Today", "Sky News"]
    assert payload["update"] == {"threshold": 3, "sources": 3}
    assert payload["sources"] == ["The Guardian", "Japan Today", "Sky News"]


def test_min_sources_holds_the_alert_until_the_third_publisher(store: Store) -> None:
    feeder = Feeder(store, Signals(store, channels={"ops": channel()}), rule(min_sources=3))
    first = feeder.report(feed("yonhap-en", "Yonhap"), HEADLINES[4][2], minutes=0)
    second = feeder.report(feed("yonhap-ko", "Yonhap"), HEADLINES[5][2], minutes=5)
    third = feeder.report(feed("cna", "CNA"), HEADLINES[7][2], minutes=9)
    wire = feeder.report(feed("straits", "Straits Times"), HEADLINES[8][2], minutes=12)
    fifth = feeder.report(feed("guardian", "The Guardian"), HEADLINES[0][2], minutes=20)
    assert [(o.kind, o.held) for o in (first, second, third, wire, fifth)] == [
        (None, "1 of 3 publishers"),
        (None, "1 of 3 publishers"),  # a second feed of the same outlet
        (None, "2 of 3 publishers"),
        (None, "2 of 3 publishers"),  # syndicated copy of CNA
        ("open", None),
    ]
    assert alerts(store) == [("open", 1, ["Yonhap", "CNA", "The Guardian"])]
    payload = json.loads(store.db.execute("SELECT payload FROM alerts").fetchone()[0])
    assert payload["copies"] == [["Straits Times", "CNA"]]
    assert len(payload["items"]) == 5


def test_require_primary_waits_for_a_primary_source_and_says_so(store: Store) -> None:
    feeder = Feeder(store, Signals(store, channels={}), rule(require_primary=True))
    held = feeder.report(feed("nbc", "NBC News"), HEADLINES[9][2], minutes=0)
    opened = feeder.report(
        feed("mfa", "Chinese Foreign Ministry", tier="primary"), HEADLINES[0][2], minutes=4
    )
    assert (held.held, opened.kind) == ("waiting for a primary source", "open")
    payload = json.loads(store.db.execute("SELECT payload FROM alerts").fetchone()[0])
    assert payload["primary"] == ["Chinese Foreign Ministry"]


def test_a_primary_source_confirming_an_open_story_sends_one_update(store: Store) -> None:
    feeder = Feeder(store, Signals(store, channels={}), rule())
    feeder.report(feed("nbc", "NBC News"), HEADLINES[9][2], minutes=0)
    confirm = feeder.report(feed("kremlin", "Kremlin", tier="primary"), HEADLINES[0][2], minutes=4)
    again = feeder.report(feed("kremlin-en", "Kremlin", tier="primary"), HEADLINES[3][2], minutes=8)
    assert (confirm.kind, again.kind) == ("update", None)
    payload = json.loads(store.db.execute("SELECT payload FROM alerts WHERE kind = 'update'").fetchone()[0])
    assert payload["update"] == {"threshold": None, "sources": 2, "primary": ["Kremlin"]}


def test_cooldown_holds_a_second_story_of_the_rule_unless_severity_rises(store: Store) -> None:
    feeder = Feeder(store, Signals(store, channels={}), rule(cooldown="1h"))
    feeder.report(feed("nbc", "NBC News"), HEADLINES[9][2], minutes=0)
    trio = ("xi-jinping", "donald-trump", "narendra-modi")
    pair = ("donald-trump", "narendra-modi")
    held = feeder.report(
        feed("cna", "CNA"), "Modi meets Xi in Tianjin as Trump watches", minutes=20, entities=trio
    )
    raised = feeder.report(
        feed("bbc", "BBC"),
        "Trump says Xi, Modi plot against US",
        minutes=25,
        entities=trio,
        severity="critical",
    )
    later = feeder.report(feed("sky", "Sky"), "Trump threatens India with tariffs", minutes=70, entities=pair)
    after = feeder.report(feed("nyt", "NYT"), "Trump warns India on tariffs", minutes=90, entities=pair)
    assert [(o.story_id, o.kind, o.held) for o in (held, raised, later, after)] == [
        (2, None, "rule cooldown"),
        (2, "open", None),  # critical: higher than the first alert's high
        (3, None, "rule cooldown"),  # 45 minutes after the critical alert
        (3, "open", None),  # the cooldown is over: the held story opens with its next item
    ]


def test_quiet_stories_close_and_a_new_report_opens_a_new_alert(store: Store) -> None:
    signals = Signals(store, channels={})
    feeder = Feeder(store, signals, rule(window="2h"))
    feeder.report(feed("nbc", "NBC News"), HEADLINES[9][2], minutes=0)
    # quiet is measured on the items' clock: with no newer item stored, nothing is quiet yet
    assert signals.close_quiet(T0 + timedelta(days=30)) == 0
    other = Item(feed="bbc", key="quake", link="https://bbc.example/q", title="Earthquake hits Afghanistan",
                 summary="", published=T0 + timedelta(minutes=121))  # fmt: skip
    store.store_items([other], now=T0 + timedelta(minutes=121))
    assert signals.close_quiet(T0 + timedelta(minutes=119)) == 0  # never later than now
    assert signals.close_quiet(T0 + timedelta(minutes=121)) == 1
    again = feeder.report(feed("bbc", "BBC News"), HEADLINES[10][2], minutes=125)
    assert (again.story_id, again.link, again.kind) == (2, "new", "open")
    assert store.db.execute("SELECT id, state FROM stories ORDER BY id").fetchall() == [
        (1, "closed"),
        (2, "open"),
    ]


def test_digest_channels_hold_their_deliveries_and_get_one_digest(store: Store) -> None:
    channels = {
        "slack": channel(severity="critical"),
        "mail": channel("mailto://127.0.0.1:9?from=a@example.org&to=b@example.org&mode=insecure",
                        mode="digest", digest={"every": "1h"}),
    }  # fmt: skip
    signals = Signals(store, channels=channels)
    feeder = Feeder(store, signals, rule())
    feeder.report(feed("guardian", "The Guardian"), HEADLINES[0][2], minutes=0)  # 01:30
    feeder.report(feed("japantoday", "Japan Today"), HEADLINES[1][2], minutes=5)
    feeder.report(feed("sky", "Sky News"), HEADLINES[2][2], minutes=10)  # threshold 3: an update
    other = Feeder(store, signals, rule(id="weapons-display", title="New weapons shown", severity="medium"))
    other.report(feed("cna", "CNA"), "China shows off drones, missiles and other hardware", minutes=15,
                 entities=("china", "parade"), severity="medium")  # fmt: skip
    states = store.db.execute("SELECT channel, state FROM deliveries ORDER BY id").fetchall()
    assert states == [("mail", "held")] * 3
    assert make_digests(store, channels, T0 + timedelta(minutes=29)) == []  # 01:59: not yet
    made = make_digests(store, channels, T0 + timedelta(minutes=31))  # 02:01
    assert len(made) == 1
    row = store.db.execute("SELECT kind, payload FROM alerts WHERE id = ?", made).fetchone()
    payload = json.loads(row[1])
    assert row[0] == "digest"
    assert payload["period"] == {"start": "2025-09-03T01:30:00+00:00", "end": "2025-09-03T02:00:00+00:00"}
    assert [(r["id"], [(s["id"], s["sources"]) for s in r["stories"]]) for r in payload["rules"]] == [
        ("trio-together", [(1, ["The Guardian", "Japan Today", "Sky News"])]),
        ("weapons-display", [(2, ["CNA"])]),
    ]
    assert [e["publisher"] for e in payload["rules"][0]["stories"][0]["entries"]] == [
        "The Guardian",
        "Japan Today",
        "Sky News",
    ]
    states = store.db.execute("SELECT channel, state, digest_id FROM deliveries ORDER BY id").fetchall()
    assert states == [("mail", "digested", made[0])] * 3 + [("mail", "pending", None)]
    # the next period is empty: nothing is written
    assert make_digests(store, channels, T0 + timedelta(minutes=95)) == []


def test_replaying_a_match_does_not_write_a_second_alert(store: Store) -> None:
    signals = Signals(store, channels={})
    feeder = Feeder(store, signals, rule())
    first = feeder.report(feed("nbc", "NBC News"), HEADLINES[9][2], minutes=0)
    item_id, key = store.db.execute("SELECT id, key FROM items").fetchone()
    item = Item(
        feed="nbc", key=key, link="https://nbc.example/1", title=HEADLINES[9][2], summary="", published=T0
    )
    stored = StoredItem(id=item_id, item=item, state="new")
    again = signals.on_match(rule=rule(), feed=feed("nbc", "NBC News"), stored=stored, match=match(), now=T0)
    assert (again.story_id, again.kind) == (first.story_id, None)
    assert len(alerts(store)) == 1
    assert store.db.execute("SELECT item_count FROM stories").fetchall() == [(1,)]
