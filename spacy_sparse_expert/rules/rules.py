"""Rule files: JSON Lines of hand-written hints that bias the classifier.

Each line is one JSON object, a rule. It names one trigger and what a hit means:

    {"id": "sport-premier-league", "phrase": "Premier League", "labels": {"sport": 2.0}}
    {"id": "sport-score", "pattern": [{"IS_DIGIT": true}, {"ORTH": "-"}, {"IS_DIGIT": true}],
     "labels": {"sport": 0.5}, "experts": {"1": 1.0}}
    {"id": "politics-politician", "kb_type": "https://w3id.org/fb15k237/type/government/politician",
     "labels": {"politics": 1.0}}

Triggers (exactly one per rule): ``phrase`` (matched on the lower-cased text, or exactly
with ``"case_sensitive": true``), ``pattern`` (a spaCy Matcher token pattern), ``kb_type``
(a linked entity has this type, subclasses included) and ``kb_relation`` (a linked entity
takes part in a triple with this predicate). ``weight`` (default 1) scales the hit;
``labels`` maps label -> score added to the document's label bias, ``experts`` maps expert
index -> score added to the router logits of the matched tokens. Blank lines and lines
starting with ``#`` are skipped. knowledge/rules/README.md documents the format in full.

Validation collects every problem of every line (`RuleProblem`: line, field, message)
instead of stopping at the first, so one run of ``sparse-expert rules check`` shows all.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import msgpack

from ..errors import Errors, RuleFileError
from .records import BYTES_FORMAT, BYTES_VERSION, RULE_KINDS, KBLike, Rule, RuleKind, RuleProblem
from .rule_validation import check_rules, parse_rules, raise_if_problems, read_rule_lines, validate_record


class RuleSet:
    """The rules of one file, in file order. Rule i has index i (used as a feature id).

    Build with `RuleSet.from_file(path, kb=...)`, `RuleSet.from_jsonl(text)` or
    `RuleSet(rules)`; invalid input raises RuleFileError whose `.problems` lists every
    `RuleProblem`.
    """

    def __init__(self, rules: Iterable[Rule] = (), *, source: str = "") -> None:
        self._rules: tuple[Rule, ...] = tuple(rules)
        self.source = source
        self._index: dict[str, int] = {}
        for i, rule in enumerate(self._rules):
            if rule.id in self._index:
                raise ValueError(f"Duplicate rule id {rule.id!r}: rule ids must be unique in a RuleSet.")
            self._index[rule.id] = i

    # --- construction ---------------------------------------------------------------

    @classmethod
    def from_file(cls, path: str | Path, *, kb: KBLike | None = None,
                  labels: Sequence[str] | None = None) -> RuleSet:
        """Read and validate a JSONL rule file.

        path (str | Path): the rule file.
        kb (KnowledgeBase | None): if given, kb_type / kb_relation IRIs must be in it.
        labels (Sequence[str] | None): if given, every label a rule names must be one of them.
        RETURNS (RuleSet): the rules. Raises RuleFileError (E020, E021).
        """
        path = Path(path)
        rules, problems = parse_rules(read_rule_lines(path), source=str(path), kb=kb, labels=labels)
        raise_if_problems(problems, str(path))
        return cls(rules, source=str(path))

    @classmethod
    def from_jsonl(cls, text: str, *, source: str = "<string>", kb: KBLike | None = None,
                   labels: Sequence[str] | None = None) -> RuleSet:
        """Validate rules given as JSONL text. Raises RuleFileError (E020)."""
        rules, problems = parse_rules(text.splitlines(), source=source, kb=kb, labels=labels)
        raise_if_problems(problems, source)
        return cls(rules, source=source)

    # --- access ---------------------------------------------------------------------

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    def __len__(self) -> int:
        return len(self._rules)

    def __iter__(self) -> Iterator[Rule]:
        return iter(self._rules)

    def __getitem__(self, index: int) -> Rule:
        return self._rules[index]

    def __contains__(self, rule_id: object) -> bool:
        return rule_id in self._index

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RuleSet) and self._rules == other._rules

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        counts = ", ".join(f"{kind}={len(self.of_kind(kind))}" for kind in RULE_KINDS)
        return f"RuleSet({len(self)} rules: {counts}; source={self.source!r})"

    @property
    def ids(self) -> list[str]:
        return [rule.id for rule in self._rules]

    def index(self, rule_id: str) -> int:
        """Position of the rule with this id. Raises KeyError for an unknown id."""
        try:
            return self._index[rule_id]
        except KeyError:
            raise KeyError(f"No rule with id {rule_id!r} in {self.source or 'this rule set'}.") from None

    def get(self, rule_id: str) -> Rule | None:
        i = self._index.get(rule_id)
        return None if i is None else self._rules[i]

    def of_kind(self, kind: RuleKind) -> list[Rule]:
        """The rules with this trigger kind, in file order."""
        if kind not in RULE_KINDS:
            raise ValueError(f"Unknown rule kind {kind!r}; expected one of {', '.join(RULE_KINDS)}.")
        return [rule for rule in self._rules if getattr(rule, kind) is not None]

    @property
    def labels(self) -> list[str]:
        """Sorted labels named by any rule."""
        return sorted({label for rule in self._rules for label in rule.labels})

    @property
    def max_expert(self) -> int:
        """Highest expert index named by any rule, -1 if none; the model needs more experts."""
        return max((i for rule in self._rules for i in rule.experts), default=-1)

    # --- serialization --------------------------------------------------------------

    def to_jsonl(self) -> str:
        return "".join(json.dumps(rule.to_dict(), ensure_ascii=False) + "\n" for rule in self._rules)

    def to_bytes(self) -> bytes:
        msg = {
            "format": BYTES_FORMAT,
            "version": BYTES_VERSION,
            "source": self.source,
            "rules": [rule.to_dict() for rule in self._rules],
        }
        return msgpack.packb(msg, use_bin_type=True)

    @classmethod
    def from_bytes(cls, data: bytes) -> RuleSet:
        """Load what `to_bytes` wrote. Records are validated again; raises RuleFileError."""
        where = "<bytes>"
        try:
            msg = msgpack.unpackb(data, raw=False, strict_map_key=True)
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise RuleFileError(Errors.E065.format(where=where, reason=f"not msgpack ({exc})")) from exc
        if not isinstance(msg, dict) or msg.get("format") != BYTES_FORMAT:
            raise RuleFileError(Errors.E065.format(where=where, reason=f"not a {BYTES_FORMAT} message"))
        if msg.get("version") != BYTES_VERSION:
            raise RuleFileError(Errors.E065.format(where=where, reason=f"format version {msg.get('version')!r}, "
                                                   f"this version reads {BYTES_VERSION}"))
        raw_source = msg.get("source")
        source = raw_source if isinstance(raw_source, str) else ""
        records = msg.get("rules")
        if not isinstance(records, list):
            raise RuleFileError(Errors.E065.format(where=where, reason="no list of rules"))
        rules: list[Rule] = []
        problems: list[RuleProblem] = []
        seen: dict[str, int] = {}
        for lineno, record in enumerate(records, start=1):
            rule = validate_record(record, where, lineno, seen, problems, kb=None, labels=None)
            if rule is not None:
                rules.append(rule)
        raise_if_problems(problems, where)
        return cls(rules, source=source)

    def to_disk(self, path: str | Path) -> None:
        """Write the rules as a JSONL rule file (readable, and checked again on load)."""
        Path(path).write_text(self.to_jsonl(), encoding="utf8")

    @classmethod
    def from_disk(cls, path: str | Path, *, kb: KBLike | None = None) -> RuleSet:
        return cls.from_file(path, kb=kb)


__all__ = ["KBLike", "Rule", "RuleProblem", "RuleSet", "RULE_KINDS", "check_rules", "parse_rules",
           "read_rule_lines"]
