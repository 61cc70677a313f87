"""Rule labels that match none of a component's labels, with the closest label.

A rule file may name labels a model lacks (one file can serve several models), and such
a score is dropped by the rule matcher. Usually, though, it is a typo ("Sport" for
"sport"), and the rule then fires and silently does nothing. `sparse-expert rules check
--labels` reports these (exit 1); the component's `initialize` warns (W010).
"""
from __future__ import annotations

import difflib
import warnings
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, NamedTuple

from ..errors import Warnings
from .records import Rule

if TYPE_CHECKING:  # pragma: no cover
    from .rules import RuleSet

_MAX_SHOWN = 10


class LabelMismatch(NamedTuple):
    """A rule label that is not a component label.

    rule_id (str): the rule's id. line (int): its line in the rule file (0 if built in code).
    label (str): the label the rule names. suggestion (str | None): the closest real label.
    """

    rule_id: str
    line: int
    label: str
    suggestion: str | None

    def __str__(self) -> str:
        where = f"rule {self.rule_id!r}" + (f" (line {self.line})" if self.line else "")
        hint = f" (did you mean {self.suggestion!r}?)" if self.suggestion else ""
        return f"{where}: label {self.label!r}{hint}"


def close_label(label: str, labels: Sequence[str]) -> str | None:
    """The label of `labels` that `label` most likely meant, or None.

    Case and surrounding space differences win outright ("Sport " -> "sport"); otherwise
    difflib's closest match with a similarity ratio of at least 0.6.
    """
    folded = label.strip().casefold()
    for candidate in labels:
        if candidate.strip().casefold() == folded:
            return candidate
    by_fold = {candidate.casefold(): candidate for candidate in labels}
    found = difflib.get_close_matches(folded, list(by_fold), n=1, cutoff=0.6)
    return by_fold[found[0]] if found else None


def unknown_rule_labels(rules: Iterable[Rule], labels: Sequence[str]) -> list[LabelMismatch]:
    """Every (rule, label) whose label is not in `labels`, in rule order."""
    known = set(labels)
    return [LabelMismatch(rule.id, rule.line, label, close_label(label, labels))
            for rule in rules for label in rule.labels if label not in known]


def describe_mismatches(mismatches: Sequence[LabelMismatch]) -> str:
    """One line listing up to ten mismatches, for a warning."""
    shown = "; ".join(str(m) for m in mismatches[:_MAX_SHOWN])
    more = len(mismatches) - _MAX_SHOWN
    return shown + (f"; and {more} more" if more > 0 else "")


def warn_unknown_rule_labels(rules: RuleSet | None, labels: Sequence[str], *, component: str) -> None:
    """Warn (W010) once, listing every rule label that is not one of `labels`."""
    if rules is None:
        return
    mismatches = unknown_rule_labels(rules, labels)
    if mismatches:
        warnings.warn(Warnings.W010.format(count=len(mismatches), source=rules.source or "the rules",
                                           name=component, labels=", ".join(labels),
                                           mismatches=describe_mismatches(mismatches)), stacklevel=3)
