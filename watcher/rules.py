"""The watch-list language: pydantic models and ``load_watchlist``.

A watch list file holds ``entities`` (named things with aliases in every script), ``groups`` of entities,
``rules`` and optionally ``include`` (more files, relative paths) and ``defaults`` (settings applied to
every rule of the file and of the files it includes, unless a rule sets them itself). A rule's condition
is built from terms (a phrase, ``{entity}``, ``{fuzzy, score}``, ``{regex}``) combined by ``all``, ``any``,
``none``, ``at_least`` and ``near``; see docs/watchlist.md. Every problem is reported at once as
``file:line:column: message`` (loading and the checks across files live in ``watcher.ruleload``).
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    WithJsonSchema,
    model_validator,
)
from typing_extensions import TypeAliasType

from watcher.units import parse_duration

Severity = Literal["info", "low", "medium", "high", "critical"]
FieldName = Literal["title", "summary"]

_DURATION_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?\s*(ms|s|m|h|d|w)\s*)+$"},
        {"type": "number", "minimum": 0},
    ],
    "description": "a duration: '90s', '5m', '48h', '2d', '1h30m' or a number of seconds",
}
Duration = Annotated[float, BeforeValidator(parse_duration), WithJsonSchema(_DURATION_SCHEMA)]
Name = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
Phrase = Annotated[str, Field(min_length=1, description="a phrase, matched after normalization")]

TERM_KEYS = ("entity", "fuzzy", "regex")
CONDITION_KEYS = ("all", "any", "none", "at_least", "near")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EntityTerm(_Model):
    """``{entity: NAME}``: any alias of the entity (or of any entity of the group) NAME."""

    entity: Name


class FuzzyTerm(_Model):
    """``{fuzzy: PHRASE, score: N}``: the phrase, or text within a similarity score of it (0-100)."""

    fuzzy: Phrase
    score: float = Field(default=88, ge=50, le=100)


class RegexTerm(_Model):
    """``{regex: PATTERN}``: a regular expression searched in the normalized (lower-case) text."""

    regex: Annotated[str, Field(min_length=1)]


def _tag(value: Any) -> str | None:
    if isinstance(value, str):
        return "phrase"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        for key in (*TERM_KEYS, *CONDITION_KEYS):
            if key in value:
                return key
        return None
    if isinstance(value, BaseModel):
        for key in (*TERM_KEYS, *CONDITION_KEYS):
            if key in type(value).model_fields or f"{key}_" in type(value).model_fields:
                return key
    return None


def _check_term(value: Any, allowed: tuple[str, ...]) -> Any:
    """Reject mappings that name no known term, with a hint from the keys they do have."""
    from watcher.yamlsrc import did_you_mean

    if isinstance(value, dict):
        if not any(k in value for k in allowed):
            keys = [str(k) for k in value]
            hint = did_you_mean(keys[0], allowed) if keys else ""
            shown = ", ".join(repr(k) for k in keys) or "nothing"
            raise ValueError(
                f"a term is a phrase or a mapping with one of {', '.join(allowed)}; got {shown}{hint}"
            )
    elif isinstance(value, list) and "all" in allowed:
        return value
    elif not isinstance(value, str | BaseModel):
        raise ValueError(f"a term is a phrase or a mapping, not {type(value).__name__}")
    return value


Term = Annotated[
    Annotated[Phrase, Tag("phrase")]
    | Annotated[EntityTerm, Tag("entity")]
    | Annotated[FuzzyTerm, Tag("fuzzy")]
    | Annotated[RegexTerm, Tag("regex")],
    Discriminator(_tag),
    BeforeValidator(lambda v: _check_term(v, TERM_KEYS)),
]


class AllOf(_Model):
    """``{all: [...]}``: every condition holds."""

    all_: list[Condition] = Field(alias="all", min_length=1)


class AnyOf(_Model):
    """``{any: [...]}``: at least one condition holds. A bare list ``[a, b]`` means the same."""

    any_: list[Condition] = Field(alias="any", min_length=1)


class NoneOf(_Model):
    """``{none: [...]}``: no condition holds."""

    none: list[Condition] = Field(min_length=1)


class AtLeastSpec(_Model):
    """``n`` of the conditions under ``of`` hold."""

    n: int = Field(ge=1)
    of: list[Condition] = Field(min_length=1)

    @model_validator(mode="after")
    def _n_fits(self) -> AtLeastSpec:
        if self.n > len(self.of):
            raise ValueError(f"at_least asks for {self.n} of {len(self.of)} conditions: it can never hold")
        return self


class AtLeast(_Model):
    """``{at_least: {n: 2, of: [...]}}``."""

    at_least: AtLeastSpec


NearTerm = Annotated[
    Annotated[Term, Tag("term")] | Annotated[list[Term], Tag("list")],
    Discriminator(lambda v: "list" if isinstance(v, list) else "term"),
]


class NearSpec(_Model):
    """All ``terms`` occur in one field with at most ``within`` words between them (CJK text: characters).

    An entry that is itself a list is satisfied by any one of its terms.
    """

    terms: list[NearTerm] = Field(min_length=2)
    within: int = Field(ge=0, le=1000)


class Near(_Model):
    """``{near: {terms: [...], within: N}}``."""

    near: NearSpec


if TYPE_CHECKING:  # mypy reads the recursive alias directly; pydantic needs TypeAliasType
    Condition = (
        str | EntityTerm | FuzzyTerm | RegexTerm | AllOf | AnyOf | NoneOf | AtLeast | Near | list["Condition"]
    )
else:
    Condition = TypeAliasType(
        "Condition",
        Annotated[
            Annotated[Phrase, Tag("phrase")]
            | Annotated[EntityTerm, Tag("entity")]
            | Annotated[FuzzyTerm, Tag("fuzzy")]
            | Annotated[RegexTerm, Tag("regex")]
            | Annotated["AllOf", Tag("all")]
            | Annotated["AnyOf", Tag("any")]
            | Annotated["NoneOf", Tag("none")]
            | Annotated["AtLeast", Tag("at_least")]
            | Annotated["Near", Tag("near")]
            | Annotated[list["Condition"], Tag("list")],
            Discriminator(_tag),
            BeforeValidator(lambda v: _check_term(v, (*TERM_KEYS, *CONDITION_KEYS))),
        ],
    )


class Scope(_Model):
    """Which items a rule looks at. An unset filter lets everything through."""

    fields: list[FieldName] | None = Field(default=None, min_length=1, description="item fields to search")
    sources: list[str] | None = Field(
        default=None, description="feed names (shell patterns such as 'kcna*' allowed)"
    )
    tags: list[str] | None = Field(
        default=None, description="feed tags; the rule applies when the feed has one"
    )
    languages: list[str] | None = Field(default=None, description="language codes (en, ko, ja, zh, ru...)")


class Entity(_Model):
    """A named thing and every way outlets write it."""

    aliases: list[Phrase] = Field(min_length=1)
    fuzzy: float | None = Field(
        default=None, ge=50, le=100, description="also match aliases at this similarity"
    )
    exclude: list[Phrase] = Field(
        default_factory=list, description="phrases in which an alias does not count"
    )
    description: str = ""


class _RuleSettings(_Model):
    """Settings a rule can take from ``defaults``."""

    severity: Severity = "medium"
    tags: list[str] = Field(default_factory=list)
    notify: list[str] = Field(default_factory=list, description="channel names from the main config")
    enabled: bool = True
    scope: Scope = Field(default_factory=Scope)
    min_sources: int = Field(default=1, ge=1, description="distinct sources needed before an alert")
    window: Duration = Field(default=172800.0, description="how far back sources and stories are grouped")
    cooldown: Duration | None = Field(
        default=None, description="quiet time after an alert for the same story"
    )
    require_primary: bool = False


class Defaults(_RuleSettings):
    """``defaults:``: settings applied to every rule that does not set them."""


class Rule(_RuleSettings):
    """One rule: metadata, scope, routing settings and a condition (``all``/``any``/``none``/...)."""

    id: Name
    title: str = Field(min_length=1)
    description: str = ""
    all_: list[Condition] | None = Field(default=None, alias="all", min_length=1)
    any_: list[Condition] | None = Field(default=None, alias="any", min_length=1)
    none: list[Condition] | None = Field(default=None, min_length=1)
    at_least: AtLeastSpec | None = None
    near: NearSpec | None = None

    @model_validator(mode="after")
    def _has_condition(self) -> Rule:
        if self.all_ is None and self.any_ is None and self.at_least is None and self.near is None:
            raise ValueError(
                "a rule needs a condition: all, any, at_least or near (none alone would match anything)"
            )
        return self

    def condition(self) -> AllOf:
        """The rule's condition as one ``all`` over the parts it sets."""
        parts: list[Condition] = []
        if self.all_:
            parts.extend(self.all_)
        if self.any_:
            parts.append(AnyOf(any=self.any_))
        if self.at_least:
            parts.append(AtLeast(at_least=self.at_least))
        if self.near:
            parts.append(Near(near=self.near))
        if self.none:
            parts.append(NoneOf(none=self.none))
        return AllOf(all=parts)


class WatchlistFile(_Model):
    """One watch-list file as written."""

    include: list[str] = Field(
        default_factory=list, description="more watch-list files, relative to this one"
    )
    defaults: Defaults | None = None
    entities: dict[Name, Entity] = Field(default_factory=dict)
    groups: dict[Name, list[Name]] = Field(
        default_factory=dict, description="entity groups: name -> entities"
    )
    rules: list[Rule] = Field(default_factory=list)


class Watchlist(_Model):
    """A loaded watch list: every file merged, defaults applied, references checked."""

    entities: dict[str, Entity] = Field(default_factory=dict)
    groups: dict[str, list[str]] = Field(default_factory=dict)
    rules: list[Rule] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list)

    def rule(self, rule_id: str) -> Rule:
        """The rule with this id (KeyError when there is none)."""
        for r in self.rules:
            if r.id == rule_id:
                return r
        raise KeyError(rule_id)

    def members(self, name: str) -> list[str]:
        """The entities an ``{entity: NAME}`` term stands for (a group's members, or the entity itself)."""
        return list(self.groups[name]) if name in self.groups else [name]


for _model in (AllOf, AnyOf, NoneOf, AtLeastSpec, NearSpec, Rule, WatchlistFile):
    _model.model_rebuild()


def watchlist_json_schema() -> dict[str, Any]:
    """JSON Schema of a watch-list file, from the models the loader validates with."""
    schema = WatchlistFile.model_json_schema(by_alias=True)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "watchlist.schema.json",
        "title": "watcher watch list",
        **{k: v for k, v in schema.items() if k != "title"},
    }


def load_watchlist(path: Path, *, channels: Collection[str] | None = None) -> Watchlist:
    """Read a watch list and everything it includes. Raises ConfigError listing every problem found."""
    from watcher.ruleload import load

    return load(Path(path), channels=channels)
