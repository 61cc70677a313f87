"""One rule of a rule file (`Rule`), one problem with a line (`RuleProblem`), and the
field names and bounds that validation (rule_validation.py) checks them against.

The file format is described in rules.py and knowledge/rules/README.md.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

RuleKind = Literal["phrase", "pattern", "kb_type", "kb_relation"]
RULE_KINDS: tuple[RuleKind, ...] = ("phrase", "pattern", "kb_type", "kb_relation")
OPTIONAL_FIELDS = ("weight", "labels", "experts", "case_sensitive", "comment")
KNOWN_FIELDS = ("id", *RULE_KINDS, *OPTIONAL_FIELDS)

BYTES_FORMAT = "spacy-sparse-expert.rules"
BYTES_VERSION = 1

# An absolute IRI: a scheme, a colon and no character that IRIs (and N-Triples) forbid.
IRI_PATTERN = re.compile(r'^[A-Za-z][A-Za-z0-9+.\-]*:[^\s<>"{}|^`\\]+$')
MAX_ID_LENGTH = 200
# Bound on |weight| and on |score| of every label and expert score. A hit adds
# weight * score to float32 biases; with both <= 1e4 one hit adds at most 1e8, so even
# 1e30 hits cannot overflow float32 (3.4e38) into inf and then NaN in doc.cats. A bias
# of 1e4 already saturates any sigmoid or softmax, so no useful rule needs more.
MAX_RULE_SCORE = 1e4


class KBLike(Protocol):
    """What validation needs from a KnowledgeBase: the id of a type or predicate IRI, or
    None if the KB lacks it (`KnowledgeBase.get_type_id` / `get_predicate_id`)."""

    def get_type_id(self, iri: str) -> int | None: ...

    def get_predicate_id(self, iri: str) -> int | None: ...


@dataclass(frozen=True)
class RuleProblem:
    """One reason a rule file line is invalid.

    path (str): the file (or "<bytes>", "<string>").
    line (int): 1-based line number in the file (record number for bytes).
    field (str): the offending field, e.g. "weight", "labels.sport", "pattern[0].LOWER",
        or "" when the line as a whole is wrong (invalid JSON, not an object).
    message (str): what is wrong and, where it helps, what was expected.
    """

    path: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}"
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "line": self.line, "field": self.field, "message": self.message}


@dataclass(frozen=True, eq=True)
class Rule:
    """A validated rule. Exactly one of phrase, pattern, kb_type, kb_relation is set.

    id (str): unique name within its file; rule hits are reported under it.
    phrase (str | list[str] | None): text(s) to match, token by token (lower-cased unless
        case_sensitive). `phrases` always gives a tuple.
    pattern (list[dict] | list[list[dict]] | None): one spaCy Matcher token pattern, or a
        list of them. `patterns` always gives a tuple of patterns.
    kb_type (str | None): type IRI; matches linked entities of that type (or a subtype).
    kb_relation (str | None): predicate IRI; matches linked entities in such a triple.
    weight (float): multiplies the label and expert scores of each hit.
    labels (dict[str, float]): label -> score added to the document's label bias.
    experts (dict[int, float]): expert index -> score added to the router logits (the file
        may also give a list of indices, each scored 1.0).
    case_sensitive (bool): match `phrase` on ORTH instead of LOWER.
    comment (str): free text, ignored.
    line (int): line in the source file (0 when built in code).
    """

    id: str
    phrase: str | list[str] | None = None
    pattern: list[dict[str, Any]] | list[list[dict[str, Any]]] | None = None
    kb_type: str | None = None
    kb_relation: str | None = None
    weight: float = 1.0
    labels: dict[str, float] = field(default_factory=dict)
    experts: dict[int, float] = field(default_factory=dict)
    case_sensitive: bool = False
    comment: str = ""
    line: int = field(default=0, compare=False)

    __hash__ = None  # type: ignore[assignment]  # holds dicts

    @property
    def kind(self) -> RuleKind:
        for kind in RULE_KINDS:
            if getattr(self, kind) is not None:
                return kind
        raise ValueError(f"Rule {self.id!r} has no trigger (phrase, pattern, kb_type or kb_relation).")

    @property
    def trigger(self) -> Any:
        """The value of the rule's one trigger field, as given in the file."""
        return getattr(self, self.kind)

    @property
    def phrases(self) -> tuple[str, ...]:
        """The phrase(s) of a phrase rule; () for other kinds."""
        if self.phrase is None:
            return ()
        return (self.phrase,) if isinstance(self.phrase, str) else tuple(self.phrase)

    @property
    def patterns(self) -> tuple[list[dict[str, Any]], ...]:
        """The token pattern(s) of a pattern rule; () for other kinds."""
        if self.pattern is None:
            return ()
        if self.pattern and all(isinstance(p, list) for p in self.pattern):
            return tuple(self.pattern)  # type: ignore[arg-type]
        return (self.pattern,)  # type: ignore[return-value]

    @property
    def target(self) -> str | None:
        """The IRI of a kb_type or kb_relation rule; None for other kinds."""
        return self.kb_type if self.kb_type is not None else self.kb_relation

    def to_dict(self) -> dict[str, Any]:
        """The rule as a rule-file record (defaults left out, expert keys as strings)."""
        data: dict[str, Any] = {"id": self.id, self.kind: self.trigger, "weight": self.weight}
        if self.labels:
            data["labels"] = dict(self.labels)
        if self.experts:
            data["experts"] = {str(k): v for k, v in sorted(self.experts.items())}
        if self.case_sensitive:
            data["case_sensitive"] = True
        if self.comment:
            data["comment"] = self.comment
        return data


__all__ = ["BYTES_FORMAT", "BYTES_VERSION", "IRI_PATTERN", "KBLike", "KNOWN_FIELDS", "MAX_ID_LENGTH",
           "MAX_RULE_SCORE", "OPTIONAL_FIELDS", "RULE_KINDS", "Rule", "RuleKind", "RuleProblem"]
