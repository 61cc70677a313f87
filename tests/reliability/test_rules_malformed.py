"""Malformed rule files: every bad line is a RuleProblem (line, field, why), loading
raises RuleFileError (E020) naming the file and lines, `rules check` exits 1 without a
traceback; property-based: any line at all gives a rule or a problem, never an exception,
and every valid rule survives the round trips and builds a matcher."""
from __future__ import annotations

import json
from pathlib import Path

import msgpack
import pytest
import spacy
from hypothesis import given
from hypothesis import strategies as st

from spacy_sparse_expert.errors import RuleFileError
from spacy_sparse_expert.kb.compile import compile_kb
from spacy_sparse_expert.rules.loaders import load_rules_v1
from spacy_sparse_expert.features.rule_matcher import RuleMatcher
from spacy_sparse_expert.rules.rules import BYTES_FORMAT, RuleSet, parse_rules

from .conftest import FAST, SLOW, assert_clean_failure, error_code, run_cli

FIXTURES = Path(__file__).parent.parent / "fixtures"
NLP = spacy.blank("en")  # one vocab for all examples: a blank pipeline per example costs 0.25 s

# (line, field the problem names, words of its message); each line has exactly one fault
BAD_LINES: list[tuple[str, str, str]] = [
    ("[" * 50_000 + "]" * 50_000, "", "nested too deeply"),
    ('{"id": "x", "phrase": "a", "weight": ' + "9" * 5000 + "}", "", "4300 digits"),
    ('{"id": "x", "phrase": "a", "weight": 1' + "0" * 400 + "}", "weight", "finite number"),
    ('{"id": "x", "phrase": "a", "experts": {"' + "9" * 5000 + '": 1}}', "experts.999999999999...", "too large"),
    ('{"id": "x", "phrase": "a", "experts": [1' + "0" * 400 + "]}", "experts[0]", "expert index"),
    ('{"id": "\\ud800", "phrase": "a"}', "", "lone surrogate"),
    ('{"id": "x", "phrase": "caf\\udc00"}', "", "lone surrogate"),
    ('{"id": "x", "pattern": [{"TEXT": {"REGEX": "(unclosed"}}]}', "pattern", "Matcher refuses"),
    ('{"id": "x", "pattern": [{"LOWER": "a", "OP": "{2,1}"}]}', "pattern", "Unknown operator"),
    ('{"id": "x", "pattern": [{"LOWER": {"IN": "abc"}}]}', "pattern[0].LOWER", "invalid token pattern"),
    ('{"id": "x", "pattern": [{"NOT_AN_ATTR": "a"}]}', "pattern[0].NOT_AN_ATTR", "invalid token pattern"),
    ('{"id": "x", "pattern": [{"_": {"custom": 1}}]}', "pattern[0]._", "custom extension"),
    ('{"id": "x", "pattern": [[{"LOWER": "a"}], {"LOWER": "b"}]}', "pattern", "list of token objects"),
    ('{"id": "x", "pattern": []}', "pattern", "is empty"),
    ('{"id": "x", "kb_type": "not an iri"}', "kb_type", "absolute type IRI"),
    ('{"id": "x", "kb_relation": "http://example.org/a b"}', "kb_relation", "absolute predicate IRI"),
    ('{"id": "x", "phrase": "a", "labels": {"": 1}}', "labels", "empty or non-string label"),
    ('{"id": "x", "phrase": "a", "Labels": {"sport": 1}}', "Labels", "unknown field"),
    ('{"id": "x", "phrase": "a", "id": "y"}', "id", "more than once"),
    ('{"id": "x", "phrase": "a", "case_sensitive": "yes"}', "case_sensitive", "true or false"),
    ('{"id": "x", "phrase": "a"', "", "invalid JSON"),
    ("null", "", "expected a JSON object"),
]


@pytest.mark.parametrize(("line", "field", "words"), BAD_LINES, ids=range(len(BAD_LINES)))
def test_each_bad_line(line: str, field: str, words: str) -> None:
    rules, problems = parse_rules(['{"id": "ok", "phrase": "fine"}', line])
    assert [r.id for r in rules] == ["ok"]
    assert [(p.line, p.field) for p in problems] == [(2, field)], problems
    assert words in problems[0].message


def test_a_file_of_bad_lines_through_loader_and_cli(tmp_path: Path) -> None:
    path = tmp_path / "bad [rules].jsonl"
    unique = [line.replace('"id": "x"', f'"id": "x{i}"', 1) for i, (line, _, _) in enumerate(BAD_LINES)]
    path.write_text('{"id": "ok", "phrase": "fine"}\n' + "\n".join(unique) + "\n", encoding="utf8")
    with pytest.raises(RuleFileError, match=r"SSE-E020.*bad \[rules\]\.jsonl has 22 invalid line") as err:
        load_rules_v1(path)(spacy.blank("en").vocab)
    assert [p.line for p in err.value.problems] == list(range(2, 24))
    result = run_cli("rules", "check", path)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "22 problem(s) on 22 line(s)" in " ".join(result.output.split())
    report = json.loads(run_cli("rules", "check", path, "--json").output)
    assert [p["line"] for p in report["problems"]] == list(range(2, 24))


def test_whole_file_faults(tmp_path: Path) -> None:
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes('{"id": "x", "phrase": "café"}\n'.encode("latin-1"))
    assert "not valid UTF-8" in str(parse_rules(latin1.read_bytes().splitlines())[1][0])
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(RuleFileError, match="SSE-E020"):
        RuleSet.from_file(garbage)
    assert_clean_failure(run_cli("rules", "check", tmp_path), "E140", str(tmp_path), "is a directory")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n# only a comment\n\n")
    assert len(RuleSet.from_file(empty)) == 0
    crlf = tmp_path / "crlf.jsonl"
    crlf.write_bytes(b'\xef\xbb\xbf{"id": "a", "phrase": "x"}\r\n{"id": "b", "phrase": "y"}\r\n')
    assert RuleSet.from_file(crlf).ids == ["a", "b"]
    huge = tmp_path / "huge.jsonl"
    huge.write_text(json.dumps({"id": "long", "phrase": "word " * 500_000}) + "\n")
    assert RuleSet.from_file(huge).ids == ["long"]


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "secret.jsonl"
    path.write_text('{"id": "a", "phrase": "x"}\n')

    def refuse(self: Path) -> bytes:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)  # the tests may run as root, who reads anything
    assert_clean_failure(run_cli("rules", "check", path), "E013", "secret.jsonl", "Permission denied")


def test_unknown_iris_against_a_kb(tmp_path: Path) -> None:
    kb_dir = tmp_path / "kb"
    compile_kb([FIXTURES / "rules_kb.ttl"]).to_disk(kb_dir)
    path = tmp_path / "iris.jsonl"
    path.write_text('{"id": "t", "kb_type": "https://example.org/type/nope"}\n'
                    '{"id": "r", "kb_relation": "https://example.org/relation/nope"}\n')
    output = " ".join(run_cli("rules", "check", path, "--kb", kb_dir).output.split())
    assert "is not in the knowledge base" in output and "Traceback" not in output
    kb_dir_with_brackets = tmp_path / "kb [/x]"
    result = run_cli("rules", "check", path, "--kb", kb_dir_with_brackets)  # rich markup in a path
    assert_clean_failure(result, "E009", str(kb_dir_with_brackets))


def test_rule_bytes_with_foreign_types() -> None:
    """Rules stored in a component are read back from msgpack, where values may be bytes."""
    for record in ({"id": b"x", "phrase": "a"}, {"id": "x", "phrase": "a", "labels": {b"k": 1}},
                   {"id": "x", "phrase": "a", "experts": {b"1": 1.0}}, {"id": "x", "phrase": [b"a"]}):
        data = msgpack.packb({"format": BYTES_FORMAT, "version": 1, "rules": [record]}, use_bin_type=True)
        with pytest.raises(RuleFileError, match="SSE-E020"):
            RuleSet.from_bytes(data)


# --- property-based ------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
fields = st.sampled_from(["id", "phrase", "pattern", "kb_type", "kb_relation", "weight", "labels", "experts",
                          "case_sensitive", "comment", "LOWER", "REGEX", "OP", "", "_"])
records = st.dictionaries(fields, json_values | st.lists(st.dictionaries(
    st.sampled_from(["LOWER", "ORTH", "TEXT", "OP", "IS_DIGIT", "REGEX", "LENGTH"]), json_values, max_size=2),
    max_size=3), max_size=5)
lines = st.one_of(records.map(json.dumps), json_values.map(json.dumps), st.text(max_size=40),
                  st.binary(max_size=40))


def is_content(line: str | bytes, first: bool) -> bool:
    """Lines the validator reads: all but blank and comment lines (bad UTF-8 always counts;
    a byte order mark is skipped on the first line only)."""
    if isinstance(line, bytes):
        try:
            line = line.decode("utf8")
        except UnicodeDecodeError:
            return True
    text = line.strip().lstrip("\ufeff") if first else line.strip()
    return bool(text) and not text.startswith("#")


def check_lines(raw: list) -> None:
    rules, problems = parse_rules(raw, source="fuzz.jsonl")
    content = [i for i, line in enumerate(raw, 1) if is_content(line, first=i == 1)]
    bad = {p.line for p in problems}
    assert bad <= set(content) and len(rules) + len(bad) == len(content)
    assert all(p.path == "fuzz.jsonl" for p in problems)
    if not problems:
        rule_set = RuleSet(rules)
        assert RuleSet.from_jsonl(rule_set.to_jsonl()) == rule_set
        assert RuleSet.from_bytes(rule_set.to_bytes()) == rule_set
        RuleMatcher(NLP.vocab, rule_set, None, labels=["a"], n_experts=max(rule_set.max_expert + 1, 1))


@FAST
@given(raw=st.lists(lines, max_size=6))
def test_any_lines_give_rules_or_problems(raw: list) -> None:
    check_lines(raw)


@pytest.mark.slow
@SLOW
@given(raw=st.lists(lines, max_size=8))
def test_any_lines_give_rules_or_problems_fuzz(raw: list) -> None:
    check_lines(raw)


phrase_text = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=15).filter(str.strip)


def check_phrase_rules(phrases: list[str], weight: float) -> None:
    text = "".join(json.dumps({"id": f"r{i}", "phrase": p, "weight": weight, "labels": {"a": 1}}) + "\n"
                   for i, p in enumerate(phrases))
    rule_set = RuleSet.from_jsonl(text)
    nlp = NLP
    matcher = RuleMatcher(nlp.vocab, rule_set, None, labels=["a"], n_experts=2)
    for i, phrase in enumerate(phrases):
        hits = matcher.token_hits(nlp.make_doc(phrase))
        if any(not t.is_space for t in nlp.make_doc(phrase)):
            assert i in hits.rules.tolist()


@FAST
@given(phrases=st.lists(phrase_text, min_size=1, max_size=4), weight=st.floats(-1e4, 1e4))  # MAX_RULE_SCORE
def test_any_phrase_rule_matches_its_own_text(phrases: list[str], weight: float) -> None:
    check_phrase_rules(phrases, weight)


@pytest.mark.slow
@SLOW
@given(phrases=st.lists(phrase_text, min_size=1, max_size=6), weight=st.floats(-1e4, 1e4))  # MAX_RULE_SCORE
def test_any_phrase_rule_matches_its_own_text_fuzz(phrases: list[str], weight: float) -> None:
    check_phrase_rules(phrases, weight)


@FAST
@given(data=st.binary(max_size=200))
def test_rule_bytes_fuzz(data: bytes) -> None:
    try:
        RuleSet.from_bytes(data)
    except RuleFileError as err:
        assert error_code(str(err)) in ("E020", "E065")
