"""Validation of rule files: every problem of every line, as `RuleProblem`s.

`parse_rules` turns JSONL lines into `Rule`s and collects what is wrong with each line
(invalid JSON, unknown or missing fields, invalid Matcher patterns, bad scores, IRIs the
KB lacks) instead of stopping at the first, so `sparse-expert rules check` shows all.
"""
from __future__ import annotations

import json
import math
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import Errors, RuleFileError, SparseExpertError, Warnings
from ..jsonl import SKIP, JSONLineError, check_input_file, decode_json_line
from .pattern_bounds import DEFAULT_MAX_MATCH_LENGTH, unbounded_reason
from .records import IRI_PATTERN, KNOWN_FIELDS, MAX_ID_LENGTH, MAX_RULE_SCORE, RULE_KINDS, KBLike, Rule, RuleProblem
from .rule_labels import close_label

# Problems beyond this many are counted, not listed, in the RuleFileError message.
MAX_PROBLEMS_IN_MESSAGE = 20


def check_rules(path: str | Path, *, kb: KBLike | None = None,
                labels: Sequence[str] | None = None) -> list[RuleProblem]:
    """Every problem in a rule file, in line order (empty if the file is valid).

    path (str | Path): the JSONL rule file. Raises RuleFileError (E021) if it does not exist.
    kb (KnowledgeBase | None): if given, kb_type / kb_relation IRIs must be in it.
    labels (Sequence[str] | None): if given, rules may only name these labels.
    RETURNS (list[RuleProblem]): the problems.

    Warns (W020) about each pattern that is matched greedily (see
    `unbounded_pattern_warnings`); such a pattern is still valid.
    """
    path = Path(path)
    rules, problems = parse_rules(read_rule_lines(path), source=str(path), kb=kb, labels=labels)
    for message in unbounded_pattern_warnings(rules, source=str(path)):
        warnings.warn(message, stacklevel=2)
    return problems


def unbounded_pattern_warnings(rules: Iterable[Rule], *, source: str) -> list[str]:
    """W020 messages, one per pattern with `+`, `*`, `{n,}` or many optional tokens: spaCy's
    Matcher would return quadratically many matches of it, so the rule matcher matches it
    greedily (leftmost-longest, non-overlapping, at most DEFAULT_MAX_MATCH_LENGTH tokens).

    rules (Iterable[Rule]): valid rules (as parse_rules returns them).
    source (str): the file, for the messages.
    RETURNS (list[str]): the messages, in rule order.
    """
    out: list[str] = []
    for rule in rules:
        if rule.kind != "pattern":
            continue
        patterns = rule.patterns
        for i, pattern in enumerate(patterns):
            reason = unbounded_reason(pattern)
            if reason is not None:
                field = f"pattern[{i}]" if len(patterns) > 1 else "pattern"
                out.append(Warnings.W020.format(path=source, line=rule.line, field=field, reason=reason,
                                                max_length=DEFAULT_MAX_MATCH_LENGTH))
    return out


def parse_rules(lines: Iterable[str | bytes], *, source: str = "<string>", kb: KBLike | None = None,
                labels: Sequence[str] | None = None) -> tuple[list[Rule], list[RuleProblem]]:
    """Validate JSONL lines. RETURNS the valid rules and the problems of the invalid lines."""
    rules: list[Rule] = []
    problems: list[RuleProblem] = []
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(lines, start=1):
        try:  # the one JSONL line reader, shared with `data convert` and `distill --unlabelled`
            record = decode_json_line(raw, first_line=lineno == 1, comments=True, parse_constant=_parse_constant)
        except JSONLineError as exc:
            problems.append(RuleProblem(source, lineno, exc.field, exc.reason))
            continue
        if record is SKIP:
            continue
        rule = validate_record(record, source, lineno, seen, problems, kb=kb, labels=labels)
        if rule is not None:
            rules.append(rule)
    return rules, problems


def validate_record(record: Any, source: str, lineno: int, seen: dict[str, int],
                     problems: list[RuleProblem], *, kb: KBLike | None,
                     labels: Sequence[str] | None) -> Rule | None:
    """Check one decoded record; append its problems; return the Rule if it has none."""
    found: list[RuleProblem] = []

    def problem(field_name: str, message: str) -> None:
        found.append(RuleProblem(source, lineno, field_name, message))

    if not isinstance(record, dict):
        problems.append(RuleProblem(source, lineno, "", f"expected a JSON object, got {_json_type(record)}"))
        return None

    for key in record:
        if key not in KNOWN_FIELDS:
            problem(key, f"unknown field; known fields are {', '.join(KNOWN_FIELDS)}")

    rule_id = record.get("id")
    if "id" not in record:
        problem("id", "missing; every rule needs a unique string id")
    elif not isinstance(rule_id, str) or not rule_id.strip():
        problem("id", f"must be a non-empty string, got {_show(rule_id)}")
        rule_id = None
    elif rule_id != rule_id.strip() or len(rule_id) > MAX_ID_LENGTH:
        problem("id", f"must have no surrounding whitespace and at most {MAX_ID_LENGTH} characters")
        rule_id = None
    elif rule_id in seen:
        problem("id", f"duplicate id {rule_id!r}; first used on line {seen[rule_id]}")
    else:
        seen[rule_id] = lineno

    kinds = [kind for kind in RULE_KINDS if kind in record]
    if not kinds:
        problem("", "no trigger: give exactly one of phrase, pattern, kb_type, kb_relation")
    elif len(kinds) > 1:
        problem(kinds[1], f"several triggers ({', '.join(kinds)}); give exactly one per rule")
    if "phrase" in record:
        _check_phrase(record["phrase"], problem)
    if "pattern" in record:
        _check_pattern(record["pattern"], problem)
    if "kb_type" in record:
        _check_iri(record["kb_type"], "kb_type", "type", kb, problem)
    if "kb_relation" in record:
        _check_iri(record["kb_relation"], "kb_relation", "predicate", kb, problem)

    weight = record.get("weight", 1.0)
    if (bad := _score_problem(weight)) is not None:
        problem("weight", bad)
    rule_labels = _check_scores(record.get("labels", {}), "labels", problem, labels=labels)
    experts = _check_experts(record.get("experts", {}), problem)
    case_sensitive = record.get("case_sensitive", False)
    if not isinstance(case_sensitive, bool):
        problem("case_sensitive", f"must be true or false, got {_show(case_sensitive)}")
    elif case_sensitive and "phrase" not in record:
        problem("case_sensitive", "only applies to phrase rules")
    comment = record.get("comment", "")
    if not isinstance(comment, str):
        problem("comment", f"must be a string, got {_show(comment)}")

    problems.extend(found)
    if found:
        return None
    assert isinstance(rule_id, str) and rule_labels is not None and experts is not None
    kind = kinds[0]
    return Rule(id=rule_id, **{kind: record[kind]}, weight=float(weight), labels=rule_labels,
                experts=experts, case_sensitive=case_sensitive, comment=comment, line=lineno)


def _check_phrase(value: Any, problem: Any) -> None:
    phrases = value if isinstance(value, list) else [value]
    if isinstance(value, list) and not value:
        problem("phrase", "is an empty list; give at least one phrase")
    for i, phrase in enumerate(phrases):
        where = f"phrase[{i}]" if isinstance(value, list) else "phrase"
        if not isinstance(phrase, str):
            problem(where, f"must be a string (or a list of strings), got {_show(phrase)}")
        elif not phrase.strip():
            problem(where, "is empty; give the words to match")


def _check_pattern(value: Any, problem: Any) -> None:
    """Validate one token pattern, or a list of them, with spaCy's own schema and Matcher."""
    example = '[{"LOWER": "box"}, {"LOWER": "office"}]'
    if isinstance(value, list) and value and all(isinstance(p, list) for p in value):
        for i, pattern in enumerate(value):
            _check_one_pattern(pattern, f"pattern[{i}]", problem)
    elif isinstance(value, list) and all(isinstance(token, dict) for token in value):
        _check_one_pattern(value, "pattern", problem)
    else:
        problem("pattern", f"must be a list of token objects such as {example}, or a list of "
                f"such lists, got {_show(value)}")


def _check_one_pattern(value: list[Any], name: str, problem: Any) -> None:
    if not value:
        problem(name, "is empty; give at least one token object")
        return
    for i, token in enumerate(value):
        if not isinstance(token, dict):
            problem(f"{name}[{i}]", f"must be a token object like {{\"LOWER\": \"box\"}}, got {_show(token)}")
            return
        if "_" in token:
            problem(f"{name}[{i}]._", "custom extension attributes are not supported in rule patterns")
            return
    from spacy.schemas import validate_token_pattern

    messages: dict[str, list[str]] = {}
    for error in validate_token_pattern(value):
        # "[pattern -> 0 -> OP -> str-enum[...]] Input should be ..."; the location may
        # itself hold brackets, so split at the first "] ".
        end = error.find("] ")
        location, text = (error[1:end], error[end + 2:]) if error.startswith("[") and end > 0 else ("", error)
        parts = [p.strip() for p in location.split("->")][1:3]  # token index, attribute
        where = name + (f"[{parts[0]}]" if parts else "") + (f".{parts[1]}" if len(parts) > 1 else "")
        messages.setdefault(where, [])
        if text not in messages[where]:
            messages[where].append(text)
    for where, texts in messages.items():
        problem(where, "invalid token pattern: " + "; or ".join(texts))
    if messages:
        return
    # The schema passes some patterns the Matcher still refuses (bad REGEX, ...).
    from spacy.matcher import Matcher

    try:
        Matcher(_vocab(), validate=True).add("check", [value])
    except Exception as exc:  # noqa: BLE001 - any refusal by spaCy is a problem of this pattern
        reason = " ".join(str(exc).split())
        problem(name, f"spaCy's Matcher refuses this pattern: {reason}")


_VOCAB: Any = None


def _vocab() -> Any:
    """A bare shared Vocab (no language data, no entry points) to validate patterns with."""
    global _VOCAB
    if _VOCAB is None:
        from spacy.vocab import Vocab

        _VOCAB = Vocab()
    return _VOCAB


def _check_iri(value: Any, name: str, what: str, kb: KBLike | None, problem: Any) -> None:
    if not isinstance(value, str) or not IRI_PATTERN.match(value):
        problem(name, f"must be an absolute {what} IRI such as https://example.org/{what}/x "
                f"(no spaces or <>), got {_show(value)}")
        return
    if kb is None:
        return
    if not _kb_has(kb, what, value):
        hint = ("the objects of rdf:type in the imported RDF" if what == "type"
                else "the predicates of the imported RDF")
        problem(name, f"{what} IRI <{value}> is not in the knowledge base; {what}s are {hint}")


def _kb_has(kb: KBLike, what: str, iri: str) -> bool:
    """Whether `kb` knows this type / predicate IRI."""
    found = kb.get_type_id(iri) if what == "type" else kb.get_predicate_id(iri)
    return found is not None


def _check_scores(value: Any, name: str, problem: Any, *,
                  labels: Sequence[str] | None) -> dict[str, float] | None:
    if not isinstance(value, dict):
        problem(name, f"must be an object of label -> number, e.g. {{\"sport\": 1.0}}, got {_show(value)}")
        return None
    scores: dict[str, float] = {}
    ok = True
    for key, score in value.items():
        if not isinstance(key, str) or not key.strip():  # bytes keys can come from msgpack
            problem(name, f"has an empty or non-string label {_show(key)}")
            ok = False
        elif labels is not None and key not in labels:
            guess = close_label(key, labels)
            hint = f" (did you mean {guess!r}?)" if guess else ""
            problem(f"{name}.{key}", f"unknown label {key!r}{hint}; expected one of {', '.join(labels)}")
            ok = False
        if (bad := _score_problem(score)) is not None:
            problem(f"{name}.{key}", bad)
            ok = False
        else:
            scores[key] = float(score)
    return scores if ok else None


def _check_experts(value: Any, problem: Any) -> dict[int, float] | None:
    if isinstance(value, list):  # [0, 2] is short for {"0": 1.0, "2": 1.0}
        experts: dict[int, float] = {}
        for i, index in enumerate(value):
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < 10**6:
                problem(f"experts[{i}]", f"must be a non-negative integer expert index, got {_show(index)}")
                return None
            if index in experts:
                problem(f"experts[{i}]", f"expert {index} is listed twice")
                return None
            experts[index] = 1.0
        return experts
    if not isinstance(value, dict):
        problem("experts", "must be an object of expert index -> number, e.g. {\"0\": 1.0}, "
                f"or a list of indices, got {_show(value)}")
        return None
    experts = {}
    ok = True
    for key, score in value.items():
        if not isinstance(key, str) or not (key.isascii() and key.isdigit()):
            problem(f"experts.{key}", "expert keys must be non-negative integers written as strings, "
                    "e.g. \"0\", \"3\"")
            ok = False
        elif len(key) > 6:
            problem(f"experts.{key[:12]}...", "expert index is too large")
            ok = False
        if (bad := _score_problem(score)) is not None:
            problem(f"experts.{key}", bad)
            ok = False
        if ok:
            experts[int(key)] = float(score)
    return experts if ok else None


# --- helpers ----------------------------------------------------------------------------


def read_rule_lines(path: str | Path) -> list[bytes]:
    """The raw lines of a rule file. Raises RuleFileError (E021) if it does not exist."""
    path = Path(path)
    try:  # a directory or FIFO gets its own message (E140, E141), not "does not exist"
        check_input_file(path, Errors.E021.format(path=path), suffix=".jsonl")
    except SparseExpertError as err:
        raise RuleFileError(str(err)) from None
    try:
        return path.read_bytes().splitlines()
    except OSError as err:
        raise RuleFileError(Errors.E013.format(path=path, reason=err.strerror or err)) from None


def raise_if_problems(problems: list[RuleProblem], path: str) -> None:
    if not problems:
        return
    shown = [f"  {p}" for p in problems[:MAX_PROBLEMS_IN_MESSAGE]]
    if len(problems) > MAX_PROBLEMS_IN_MESSAGE:
        shown.append(f"  ... and {len(problems) - MAX_PROBLEMS_IN_MESSAGE} more")
    lines = len({p.line for p in problems})
    raise RuleFileError(Errors.E020.format(path=path, count=lines, problems="\n".join(shown)), problems)


def _is_finite_number(value: Any) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float range
        return False


def _score_problem(value: Any) -> str | None:
    """What is wrong with a weight or score from a rule file, or None: it must be a JSON
    number (not a boolean) with |value| <= MAX_RULE_SCORE, so float32 sums stay finite."""
    if not _is_finite_number(value):
        return f"must be a finite number, got {_show(value)}"
    if abs(value) > MAX_RULE_SCORE:
        return (f"must be a finite number with |x| <= {MAX_RULE_SCORE:g} (scores are summed in "
                f"float32), got {_show(value)}")
    return None


def _parse_constant(name: str) -> float:
    # Python's json accepts NaN/Infinity; keep them so the field check can name the field.
    return float(name.replace("Infinity", "inf"))


def _json_type(value: Any) -> str:
    names = {list: "an array", str: "a string", bool: "a boolean", type(None): "null",
             int: "a number", float: "a number", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return {True: "Infinity", False: "-Infinity"}[value > 0] if not math.isnan(value) else "NaN"
    text = json.dumps(value, ensure_ascii=False, default=repr)  # bytes from msgpack, too
    return text if len(text) <= 60 else text[:57] + "..."


__all__ = ["MAX_PROBLEMS_IN_MESSAGE", "check_rules", "parse_rules", "raise_if_problems", "read_rule_lines",
           "unbounded_pattern_warnings", "validate_record"]
