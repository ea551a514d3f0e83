"""The watch-list loader: the shipped list, defaults and includes, every problem positioned, the schema."""

from __future__ import annotations

import json
import os
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from watcher.errors import ConfigError
from watcher.ruleload import backtracking_risk
from watcher.rules import load_watchlist, watchlist_json_schema

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "config" / "watchlist.yaml"
SCHEMA = ROOT / "docs" / "watchlist.schema.json"
RULE_IDS = [
    "trio-together",
    "joint-statement",
    "bilateral-meeting",
    "cooperation-readout",
    "signed-agreement",
    "washington-reaction",
    "seoul-reaction",
    "tokyo-reaction",
    "military-posture",
    "demarche",
    "sanctions-evasion",
    "weapons-display",
]


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path) -> None:
    os.chdir(tmp_path)  # problems show paths relative to the working directory


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def problems(path: Path, **kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_watchlist(path, **kwargs)  # type: ignore[arg-type]
    return [str(p) for p in info.value.problems]


def test_shipped_watchlist_has_the_contracted_rules_with_metadata() -> None:
    wl = load_watchlist(SHIPPED, channels=["console"])
    assert [r.id for r in wl.rules] == RULE_IDS
    for rule in wl.rules:
        assert rule.title and rule.description and "\n" not in rule.description
        assert rule.severity in ("info", "low", "medium", "high", "critical")
        assert rule.notify == []
    assert SHIPPED.read_text(encoding="utf-8").splitlines()[0] == (
        "# yaml-language-server: $schema=../docs/watchlist.schema.json"
    )


def test_shipped_watchlist_validates_against_the_committed_schema() -> None:
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    document = YAML(typ="safe").load(SHIPPED.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(document)
    broken = {**document, "rules": [{**document["rules"][0], "severty": "high"}]}
    errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(broken)]
    assert errors  # the editor would underline the misspelled key


def test_committed_schema_is_the_generated_one() -> None:
    assert json.loads(SCHEMA.read_text(encoding="utf-8")) == watchlist_json_schema()


def test_defaults_routing_fields_and_durations(tmp_path: Path) -> None:
    path = write(
        tmp_path / "wl.yaml",
        """
defaults:
  severity: high
  window: 90m
  scope: {languages: [en]}
rules:
  - id: a
    title: A
    any: [parade]
  - id: b
    title: B
    severity: low
    cooldown: 1h30m
    min_sources: 2
    require_primary: true
    enabled: false
    scope: {fields: [title]}
    any: [parade]
""",
    )
    a, b = load_watchlist(path).rules
    assert (a.severity, a.window, a.cooldown, a.min_sources, a.require_primary, a.enabled) == (
        "high",
        5400.0,
        None,
        1,
        False,
        True,
    )
    assert (b.severity, b.window, b.cooldown, b.min_sources, b.require_primary, b.enabled) == (
        "low",
        5400.0,
        5400.0,
        2,
        True,
        False,
    )
    assert (a.scope.languages, a.scope.fields) == (["en"], None)
    assert (b.scope.languages, b.scope.fields) == (["en"], ["title"])


def test_plain_rule_defaults(tmp_path: Path) -> None:
    path = write(tmp_path / "wl.yaml", "rules:\n  - id: a\n    title: A\n    any: [x]\n")
    (rule,) = load_watchlist(path).rules
    assert (rule.severity, rule.window, rule.cooldown, rule.min_sources, rule.require_primary) == (
        "medium",
        172800.0,
        None,
        1,
        False,
    )


def test_every_problem_is_reported_at_once_with_its_position(tmp_path: Path) -> None:
    path = write(
        tmp_path / "wl.yaml",
        """entities:
  kim-jong-un:
    aliases: [Kim Jong Un]
groups:
  leaders: [kim-jong-um]
rules:
  - id: a
    title: A
    notify: [consle]
    all:
      - {entity: kim-jong-um}
      - {regex: "(unclosed"}
  - id: a
    title: Again
    any:
      - {regex: "(a+)+b"}
      - {entiy: kim-jong-un}
""",
    )
    # a file that does not validate cannot be checked further: its validation problems come first
    assert problems(path, channels=["console", "slack"]) == [
        "wl.yaml:17:9: rules.1.any.1: a term is a phrase or a mapping with one of entity, fuzzy, regex, all, "
        "any, none, at_least, near; got 'entiy' (did you mean 'entity'?)",
    ]
    path.write_text(path.read_text().replace("{entiy: kim-jong-un}", "{entity: kim-jong-un}"))
    assert problems(path, channels=["console", "slack"]) == [
        "wl.yaml:5:13: group 'leaders': 'kim-jong-um' is an unknown entity (did you mean 'kim-jong-un'?)",
        "wl.yaml:9:14: unknown channel 'consle' (did you mean 'console'?) (known: console, slack)",
        "wl.yaml:11:18: unknown entity 'kim-jong-um' (did you mean 'kim-jong-un'?)",
        "wl.yaml:12:17: invalid regex '(unclosed': missing ) at position 9",
        "wl.yaml:13:9: duplicate rule id 'a' (first at wl.yaml:7:9)",
        "wl.yaml:16:17: regex '(a+)+b' nests a quantifier inside a quantified group (like (a+)+), "
        "which can take exponential time; rewrite it without that",
    ]


def test_unknown_key_gets_a_did_you_mean(tmp_path: Path) -> None:
    path = write(tmp_path / "wl.yaml", "rules:\n  - id: a\n    title: A\n    severty: high\n    any: [x]\n")
    assert problems(path) == ["wl.yaml:4:5: unknown key 'severty' (did you mean 'severity'?)"]


def test_rule_without_a_positive_condition_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "wl.yaml", "rules:\n  - id: a\n    title: A\n    none: [x]\n")
    assert problems(path) == [
        "wl.yaml:2:5: rules.0: a rule needs a condition: all, any, at_least or near "
        "(none alone would match anything)"
    ]


def test_includes_share_entities_and_point_errors_into_the_included_file(tmp_path: Path) -> None:
    main = write(
        tmp_path / "main.yaml",
        """include: [more/leaders.yaml]
defaults: {severity: high}
entities:
  putin: {aliases: [Putin]}
rules:
  - id: main-rule
    title: Main
    any: [{entity: kim}]
""",
    )
    write(
        tmp_path / "more" / "leaders.yaml",
        """entities:
  kim: {aliases: [Kim Jong Un]}
rules:
  - id: included-rule
    title: Included
    all: [{entity: putin}, {entity: xi}]
""",
    )
    assert problems(main) == ["more/leaders.yaml:6:37: unknown entity 'xi'"]
    leaders = tmp_path / "more" / "leaders.yaml"
    leaders.write_text(leaders.read_text().replace("{entity: xi}", "{entity: kim}"))
    wl = load_watchlist(main)
    assert [(r.id, r.severity) for r in wl.rules] == [("main-rule", "high"), ("included-rule", "high")]
    assert sorted(wl.entities) == ["kim", "putin"]
    assert wl.files == ["main.yaml", "more/leaders.yaml"]


def test_missing_include_and_cycles_are_positioned(tmp_path: Path) -> None:
    a = write(tmp_path / "a.yaml", "include: [b.yaml, nowhere.yaml]\n")
    write(tmp_path / "b.yaml", "include: [a.yaml]\n")
    assert problems(a) == [
        "a.yaml:1:19: include 'nowhere.yaml': cannot read file: No such file or directory",
        "b.yaml:1:11: include cycle: a.yaml -> b.yaml -> a.yaml",
    ]


@pytest.mark.parametrize(
    ("pattern", "risky"),
    [
        ("(a+)+b", True),
        ("(x*)*y", True),
        ("(?:\\w+\\s?)*$", True),
        ("(a|b)+", False),
        ("\\bsign(s|ing)? (an? )?deal", False),
        ("(?:ab){2,5}", False),
    ],
)
def test_backtracking_risk(pattern: str, risky: bool) -> None:
    assert (backtracking_risk(pattern) is not None) is risky
