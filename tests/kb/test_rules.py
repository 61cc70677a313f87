from __future__ import annotations

import json
from pathlib import Path

import pytest

from spacy_sparse_expert.errors import RuleFileError
from spacy_sparse_expert.rules.rules import (
    RULE_KINDS,
    Rule,
    RuleProblem,
    RuleSet,
    check_rules,
    parse_rules,
)

BBC_LABELS = ["business", "entertainment", "politics", "sport", "tech"]


def problems_of(*lines: str, **kwargs: object) -> list[RuleProblem]:
    _, problems = parse_rules(list(lines), source="t.jsonl", **kwargs)  # type: ignore[arg-type]
    return problems


def one_problem(line: str, **kwargs: object) -> RuleProblem:
    problems = problems_of(line, **kwargs)
    assert len(problems) == 1, problems
    return problems[0]


@pytest.fixture(scope="module")
def tiny_kb(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from spacy_sparse_expert.kb.compile import import_rdf

    out = tmp_path_factory.mktemp("rules_kb") / "kb"
    return import_rdf([fixtures_dir / "rules_kb.ttl"], out)


# --- a good file -------------------------------------------------------------------


def test_good_file_loads(fixtures_dir: Path) -> None:
    rules = RuleSet.from_file(fixtures_dir / "rules_good.jsonl")
    assert rules.ids == ["sport-league", "sport-words", "sport-score", "politics-politician",
                         "sport-home-city", "tech-acronym"]
    assert [r.kind for r in rules] == ["phrase", "phrase", "pattern", "kb_type", "kb_relation", "phrase"]
    league, words, score, politician, home, acronym = rules
    assert league.phrases == ("Premier League",) and league.weight == 1.0
    assert league.labels == {"sport": 2.0} and league.experts == {}
    assert words.phrases == ("striker", "goalkeeper") and words.experts == {1: 0.5}
    assert score.patterns == ([{"IS_DIGIT": True}, {"ORTH": "-"}, {"IS_DIGIT": True}],)
    assert score.experts == {0: 1.0}
    assert politician.target == "https://example.org/type/politician" and politician.comment
    assert home.target == "https://example.org/relation/home_city" and home.weight == 2.0
    assert acronym.case_sensitive and not league.case_sensitive
    assert [r.line for r in rules] == [2, 3, 5, 6, 7, 8]  # comments and blank lines skipped
    assert rules.labels == ["politics", "sport", "tech"] and rules.max_expert == 1
    assert rules.index("sport-score") == 2 and "tech-acronym" in rules and rules.get("nope") is None
    assert [r.id for r in rules.of_kind("phrase")] == ["sport-league", "sport-words", "tech-acronym"]
    assert check_rules(fixtures_dir / "rules_good.jsonl") == []


def test_rule_built_in_code_and_kinds() -> None:
    rule = Rule(id="x", pattern=[[{"LOWER": "a"}], [{"LOWER": "b"}]])
    assert rule.kind == "pattern" and len(rule.patterns) == 2 and rule.phrases == () and rule.target is None
    assert set(RULE_KINDS) == {"phrase", "pattern", "kb_type", "kb_relation"}
    with pytest.raises(ValueError, match="Duplicate rule id"):
        RuleSet([Rule(id="x", phrase="a"), Rule(id="x", phrase="b")])


# --- every kind of problem, with its line and field ----------------------------------


def test_bad_file_reports_every_line(fixtures_dir: Path) -> None:
    path = fixtures_dir / "rules_bad.jsonl"
    problems = check_rules(path)
    got = {(p.line, p.field) for p in problems}
    expected = {
        (2, ""),                   # invalid JSON
        (3, ""),                   # not an object
        (4, "lables"),             # unknown field
        (5, "id"),                 # missing id
        (6, "id"),                 # duplicate id
        (7, ""),                   # no trigger
        (8, "kb_type"),            # two triggers
        (9, "pattern[0].LOWER"),   # invalid Matcher pattern
        (10, "phrase"),            # empty phrase
        (11, "weight"),            # not a number
        (12, "weight"),            # NaN
        (13, "labels.sport"),      # label score not a number
        (14, "experts.first"),     # expert key not an int
    }
    assert got == expected
    assert all(p.path == str(path) for p in problems)
    with pytest.raises(RuleFileError) as info:
        RuleSet.from_file(path)
    assert "[SSE-E020]" in str(info.value) and "13 invalid line(s)" in str(info.value)
    assert info.value.problems == problems
    assert f"{path}:9: pattern[0].LOWER:" in str(info.value)


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ('{"id": "a", "phrase": "x"', "", "invalid JSON at column 26"),
        ('{"id": "a", "phrase": "x", "id": "b"}', "id", "more than once"),
        ("42", "", "got a number"),
        ('{"id": "a", "phrase": "x", "colour": 1}', "colour", "unknown field"),
        ('{"id": "", "phrase": "x"}', "id", "non-empty string"),
        ('{"id": 7, "phrase": "x"}', "id", "non-empty string"),
        ('{"id": "a", "phrase": "x", "pattern": [{"LOWER": "x"}]}', "pattern", "several triggers"),
        ('{"id": "a"}', "", "no trigger"),
        ('{"id": "a", "phrase": ""}', "phrase", "empty"),
        ('{"id": "a", "phrase": []}', "phrase", "empty list"),
        ('{"id": "a", "phrase": ["ok", 3]}', "phrase[1]", "must be a string"),
        ('{"id": "a", "pattern": []}', "pattern", "empty"),
        ('{"id": "a", "pattern": "box office"}', "pattern", "list of token objects"),
        ('{"id": "a", "pattern": [{"FOO": "x"}]}', "pattern[0].FOO", "invalid token pattern"),
        ('{"id": "a", "pattern": [{"LOWER": "x", "OP": "!!"}]}', "pattern[0].OP", "invalid token pattern"),
        ('{"id": "a", "pattern": [{"TEXT": {"REGEX": "("}}]}', "pattern", "Matcher refuses"),
        ('{"id": "a", "pattern": [[{"LOWER": "x"}], [{"LOWER": 2}]]}', "pattern[1][0].LOWER", "invalid"),
        ('{"id": "a", "pattern": [{"_": {"x": 1}}]}', "pattern[0]._", "extension"),
        ('{"id": "a", "kb_type": "politician"}', "kb_type", "absolute type IRI"),
        ('{"id": "a", "kb_relation": "http://x/has space"}', "kb_relation", "absolute predicate IRI"),
        ('{"id": "a", "phrase": "x", "weight": true}', "weight", "finite number"),
        ('{"id": "a", "phrase": "x", "weight": Infinity}', "weight", "got Infinity"),
        ('{"id": "a", "phrase": "x", "weight": 1e999}', "weight", "finite number"),
        ('{"id": "a", "phrase": "x", "labels": ["sport"]}', "labels", "object of label -> number"),
        ('{"id": "a", "phrase": "x", "labels": {"sport": NaN}}', "labels.sport", "got NaN"),
        ('{"id": "a", "phrase": "x", "experts": {"-1": 1}}', "experts.-1", "non-negative integers"),
        ('{"id": "a", "phrase": "x", "experts": {"0": "x"}}', "experts.0", "finite number"),
        ('{"id": "a", "phrase": "x", "experts": [0, -2]}', "experts[1]", "non-negative integer"),
        ('{"id": "a", "phrase": "x", "experts": "0"}', "experts", "expert index"),
        ('{"id": "a", "phrase": "x", "case_sensitive": "yes"}', "case_sensitive", "true or false"),
        ('{"id": "a", "kb_type": "http://x/t", "case_sensitive": true}', "case_sensitive", "phrase rules"),
        ('{"id": "a", "phrase": "x", "comment": 1}', "comment", "must be a string"),
    ],
)
def test_each_problem(line: str, field: str, words: str) -> None:
    problem = one_problem(line)
    assert (problem.line, problem.field) == (1, field)
    assert words in problem.message, problem.message


def test_line_numbers_count_comments_blanks_and_bad_utf8() -> None:
    lines = [b"# comment", b"", b'{"id": "a", "phrase": "x"}', b'{"id": "b", "phrase": "\xff"}',
             b'{"id": "a", "phrase": "y"}']
    problems = problems_of(*lines)  # type: ignore[arg-type]
    assert [(p.line, p.field) for p in problems] == [(4, ""), (5, "id")]
    assert "UTF-8" in problems[0].message and "line 3" in problems[1].message
    assert str(problems[1]).startswith("t.jsonl:5: id: duplicate id 'a'")


def test_unknown_labels_when_labels_given() -> None:
    problem = one_problem('{"id": "a", "phrase": "x", "labels": {"sports": 1}}', labels=BBC_LABELS)
    assert problem.field == "labels.sports" and "unknown label" in problem.message
    assert problems_of('{"id": "a", "phrase": "x", "labels": {"sport": 1}}', labels=BBC_LABELS) == []


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match=r"\[SSE-E021\]"):
        check_rules(tmp_path / "nope.jsonl")
    with pytest.raises(RuleFileError, match=r"\[SSE-E021\]"):
        RuleSet.from_file(tmp_path / "nope.jsonl")


# --- the KB checks ----------------------------------------------------------------------


def test_kb_checks_type_and_predicate_iris(fixtures_dir: Path, tiny_kb: object) -> None:
    problems = check_rules(fixtures_dir / "rules_bad.jsonl", kb=tiny_kb)  # type: ignore[arg-type]
    kb_problems = [(p.line, p.field) for p in problems if "knowledge base" in p.message]
    assert kb_problems == [(15, "kb_type"), (16, "kb_relation")]
    assert check_rules(fixtures_dir / "rules_good.jsonl", kb=tiny_kb) == []  # type: ignore[arg-type]
    # a superclass that only occurs in rdfs:subClassOf is a type too
    assert problems_of('{"id": "p", "kb_type": "https://example.org/type/person"}', kb=tiny_kb) == []


class _FakeKB:
    """The two lookups rules ask of a KB (KBLike, as KnowledgeBase has them): id or None."""

    def get_type_id(self, iri: str) -> int | None:
        return 0 if iri == "http://x/type" else None

    def get_predicate_id(self, iri: str) -> int | None:
        return 3 if iri == "http://x/pred" else None


def test_kb_lookup_through_get_type_id_and_get_predicate_id() -> None:
    kb = _FakeKB()
    assert problems_of('{"id": "a", "kb_type": "http://x/type"}', kb=kb) == []
    assert problems_of('{"id": "a", "kb_relation": "http://x/pred"}', kb=kb) == []
    assert one_problem('{"id": "a", "kb_type": "http://x/other"}', kb=kb).field == "kb_type"
    assert one_problem('{"id": "a", "kb_relation": "http://x/other"}', kb=kb).field == "kb_relation"


# --- serialization ------------------------------------------------------------------------


def test_bytes_round_trip(fixtures_dir: Path) -> None:
    rules = RuleSet.from_file(fixtures_dir / "rules_good.jsonl")
    again = RuleSet.from_bytes(rules.to_bytes())
    assert again == rules and again.source == rules.source
    assert [r.to_dict() for r in again] == [r.to_dict() for r in rules]
    assert again.to_bytes() == rules.to_bytes()


def test_jsonl_and_disk_round_trip(fixtures_dir: Path, tmp_path: Path) -> None:
    rules = RuleSet.from_file(fixtures_dir / "rules_good.jsonl")
    assert RuleSet.from_jsonl(rules.to_jsonl()) == rules
    rules.to_disk(tmp_path / "rules.jsonl")
    assert RuleSet.from_disk(tmp_path / "rules.jsonl") == rules


def test_from_bytes_refuses_bad_data() -> None:
    import msgpack

    with pytest.raises(RuleFileError, match="Cannot read"):
        RuleSet.from_bytes(b"\xc1")
    with pytest.raises(RuleFileError, match="version"):
        RuleSet.from_bytes(msgpack.packb({"format": "spacy-sparse-expert.rules", "version": 99, "rules": []}))
    bad = {"format": "spacy-sparse-expert.rules", "version": 1, "rules": [{"id": "a", "weight": "x"}]}
    with pytest.raises(RuleFileError) as info:
        RuleSet.from_bytes(msgpack.packb(bad))
    assert {p.field for p in info.value.problems} == {"", "weight"}


# --- the shipped starter file -----------------------------------------------------------


def test_shipped_news_rules_are_valid(repo_root: Path) -> None:
    path = repo_root / "knowledge" / "rules" / "news.jsonl"
    rules = RuleSet.from_file(path, labels=BBC_LABELS)
    assert 40 <= len(rules) <= 80
    assert rules.labels == BBC_LABELS
    assert all(rules.of_kind(kind) for kind in RULE_KINDS)
    iris = {r.target for r in rules if r.target}
    assert all(iri.startswith("https://w3id.org/fb15k237/") for iri in iris)
    for line in path.read_text(encoding="utf8").splitlines():
        if line and not line.startswith("#"):
            assert "experts" not in json.loads(line)  # the starter file must fit any model size


@pytest.mark.slow
def test_shipped_news_rules_against_shipped_kb(repo_root: Path, tmp_path: Path) -> None:
    from spacy_sparse_expert.kb.compile import import_rdf

    kb = import_rdf([repo_root / "knowledge" / "fb15k237.nt.gz"], tmp_path / "fbkb")
    assert check_rules(repo_root / "knowledge" / "rules" / "news.jsonl", kb=kb, labels=BBC_LABELS) == []
