"""Bounded work per document: pattern rules with unbounded operators and deep or wide
type hierarchies cost O(tokens), checked under resource limits in a forked child (a
regression fails there instead of taking the machine); and ordinary matches and shallow
type closures are exactly what they were."""
from __future__ import annotations

import json
import os
import random
import resource
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List

import networkx as nx
import numpy as np
import pytest
import spacy
from spacy.matcher import Matcher
from spacy.tokens import Doc

from spacy_sparse_expert.errors import SparseExpertError
from spacy_sparse_expert.features.bounded_patterns import BoundedPatterns, leftmost_longest, unbounded_reason
from spacy_sparse_expert.kb.compile import import_rdf
from spacy_sparse_expert.features.features import KnowledgeFeaturizer
from spacy_sparse_expert.kb.hierarchy import DEFAULT_MAX_TYPES_PER_ENTITY, superclass_closure
from spacy_sparse_expert.features.rule_matcher import RuleMatcher
from spacy_sparse_expert.rules.rule_validation import check_rules
from spacy_sparse_expert.rules.rules import RuleSet

EX = "http://example.org/"
SUB = "<http://www.w3.org/2000/01/rdf-schema#subClassOf>"
TYPE = "<http://www.w3.org/1999/02/22-rdf-syntax-ns#type>"
LABEL = "<http://www.w3.org/2000/01/rdf-schema#label>"
NLP = spacy.blank("en")

# + and * on common attributes, {n,}, a wide range, a wildcard, a negation
UNBOUNDED = [
    [{"IS_TITLE": True, "OP": "+"}],
    [{"IS_ALPHA": True, "OP": "*"}, {"IS_TITLE": True}],
    [{"LOWER": {"REGEX": "^w"}, "OP": "+"}, {"IS_ALPHA": True, "OP": "+"}],
    [{"IS_TITLE": True, "OP": "{2,}"}, {"IS_PUNCT": True, "OP": "*"}],
    [{"IS_TITLE": True, "OP": "{1,10}"}],
    [{"OP": "+"}],
    [{"TEXT": {"REGEX": "[A-Z]"}, "OP": "+"}, {"ORTH": ".", "OP": "!"}, {"LENGTH": {">=": 1}, "OP": "*"}],
    [{"IS_ALPHA": True, "OP": "*"}, {"IS_ALPHA": True, "OP": "*"}, {"IS_ALPHA": True, "OP": "+"}],
]


def run_limited(fn: Callable[[], Dict[str, Any]], *, mem_mb: int, cpu_s: int) -> Dict[str, Any]:
    """Run `fn` in a forked child with at most `mem_mb` MiB more address space and `cpu_s`
    more CPU seconds than the child starts with. RETURNS fn's dict + seconds, grown_mb."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        status = 1
        try:
            os.close(read_end)
            page = resource.getpagesize()
            vm = int(Path("/proc/self/statm").read_text().split()[0]) * page
            resource.setrlimit(resource.RLIMIT_AS, (vm + mem_mb * 2**20, vm + mem_mb * 2**20))
            used = resource.getrusage(resource.RUSAGE_SELF)
            cpu = int(used.ru_utime + used.ru_stime) + cpu_s
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
            rss0 = _rss_mb()
            t0 = time.perf_counter()
            out = fn()
            out["seconds"] = time.perf_counter() - t0
            out["grown_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - rss0
            status = 0
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            out = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        os.write(write_end, json.dumps(out).encode())
        os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), f"child killed by signal {os.WTERMSIG(status) if os.WIFSIGNALED(status) else status}"
    out = json.loads(data) if data else {}
    assert os.WEXITSTATUS(status) == 0, out.get("error", status)
    return out


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# --- pattern rules --------------------------------------------------------------------


def _random_pattern(rng: random.Random) -> List[Dict[str, Any]]:
    tests = [{"IS_TITLE": True}, {"LOWER": "b"}, {"IS_ALPHA": True}, {"LOWER": {"IN": ["a", "d"]}}, {},
             {"LIKE_NUM": True}, {"TEXT": {"REGEX": "^[A-C]"}}]
    ops = [None, "?", "*", "+", "!", "{2}", "{1,3}", "{,2}", "{2,}"]
    pattern = []
    for _ in range(rng.randint(1, 4)):
        token = dict(rng.choice(tests))
        op = rng.choice(ops)
        if op:
            token["OP"] = op
        pattern.append(token)
    return pattern


def test_bounded_engine_finds_exactly_spacys_matches() -> None:
    """A generated family of patterns (every operator, lexical and predicate tests) on
    generated docs: every (start, end) the NFA accepts is a match spaCy's Matcher returns,
    and vice versa; the greedy selection is leftmost-longest over that set."""
    rng = random.Random(1)
    words = ["A", "b", "C", "d", "1", "Bee", "."]
    compared = 0
    for _ in range(300):
        pattern = _random_pattern(rng)
        reference = Matcher(NLP.vocab)
        try:
            reference.add("k", [pattern])
        except ValueError:  # spaCy refuses it (e.g. only "!" tokens); so does rules check
            continue
        doc = Doc(NLP.vocab, words=[rng.choice(words) for _ in range(rng.randint(1, 12))])
        want = sorted((s, e) for _, s, e in reference(doc))
        engine = BoundedPatterns(NLP.vocab, max_length=16)
        engine.add(1, pattern)
        passes = engine.token_tests(doc)
        got: List[tuple] = []
        for _, kinds, specs in engine._patterns:
            got = sorted((s, s + n) for n, acc in engine.accepting(passes, kinds, specs, len(doc))
                         for s in np.flatnonzero(acc).tolist())
        assert got == want, (pattern, [t.text for t in doc])
        longest = np.zeros(len(doc), dtype=np.int64)
        for s, e in want:
            longest[s] = max(longest[s], e - s)
        assert [(s, e) for _, s, e in engine(doc)] == leftmost_longest(longest)
        compared += 1
    assert compared > 200


def _rules_case(n_tokens: int) -> Dict[str, Any]:
    lines = "\n".join(json.dumps({"id": f"r{i}", "pattern": p}) for i, p in enumerate(UNBOUNDED))
    feat = KnowledgeFeaturizer(NLP.vocab, None, RuleSet.from_jsonl(lines), labels=["a"], n_experts=2)
    words = (["Word", "Alpha", "word", "Beta", ","] * (n_tokens // 5 + 1))[:n_tokens]
    out: Dict[str, Any] = {}
    for name, doc_words in (("title", ["Word"] * n_tokens), ("mixed", words)):
        doc = Doc(NLP.vocab, words=doc_words)
        dk = feat(doc)
        hits = doc._.rule_hits
        by_rule: Dict[str, List[tuple]] = {}
        for rule, s, e in hits:
            by_rule.setdefault(rule, []).append((s, e))
        out[name] = {
            "hits": len(hits),
            "max_len": max((e - s for _, s, e in hits), default=0),
            "overlap": any(a[1] > b[0] for spans in by_rule.values() for a, b in zip(sorted(spans), sorted(spans)[1:])),
            "title_rule": sorted(by_rule.get("r0", [])),
            "max_ids": int(np.diff(dk.ids_indptr).max()),
        }
    return out


@pytest.mark.parametrize("n_tokens", [1_000, 10_000, 100_000])
def test_unbounded_patterns_cost_linear_work(n_tokens: int) -> None:
    """1,000 title-case tokens used to run out of memory; 100,000 now take seconds."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # W021 where a rule hits more than 10,000 times
        out = run_limited(lambda: _rules_case(n_tokens), mem_mb=1500, cpu_s=90)
    for name in ("title", "mixed"):
        case = out[name]
        assert 0 < case["max_len"] <= 32 and not case["overlap"], case
        assert case["hits"] <= len(UNBOUNDED) * n_tokens
        assert case["max_ids"] <= len(UNBOUNDED) + 1  # each rule once per token, + the rule flag
    # a run of title-case tokens is cut into leftmost-longest pieces of 32
    assert out["title"]["title_rule"] == [[s, min(s + 32, n_tokens)] for s in range(0, n_tokens, 32)][:10_000]


def test_ordinary_patterns_keep_every_match() -> None:
    """Bounded patterns still go to spaCy's Matcher: every (overlapping) match."""
    lines = json.dumps({"id": "two", "pattern": [{"IS_TITLE": True}, {"IS_TITLE": True, "OP": "?"}]})
    rm = RuleMatcher(NLP.vocab, RuleSet.from_jsonl(lines), None, labels=["a"], n_experts=1)
    doc = Doc(NLP.vocab, words=["A", "B", "C", "d"])
    hits = rm.token_hits(doc)
    assert sorted(zip(hits.starts.tolist(), hits.ends.tolist())) == [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)]


def test_matches_per_rule_are_capped_with_a_warning() -> None:
    lines = json.dumps({"id": "any", "phrase": "x"})
    rm = RuleMatcher(NLP.vocab, RuleSet.from_jsonl(lines), None, labels=["a"], n_experts=1,
                     max_matches_per_rule=100)
    with pytest.warns(UserWarning, match=r"SSE-W021.*'any'.*1,000 times.*first 100"):
        hits = rm.token_hits(Doc(NLP.vocab, words=["x"] * 1000))
    assert hits.starts.tolist() == list(range(100))


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "32"])
def test_bad_limits_are_one_coded_error(bad: Any) -> None:
    rules = RuleSet.from_jsonl(json.dumps({"id": "a", "phrase": "x"}))
    for name in ("max_match_length", "max_matches_per_rule"):
        with pytest.raises(SparseExpertError, match=rf"SSE-E120.*{name}"):
            RuleMatcher(NLP.vocab, rules, None, labels=["a"], n_experts=1, **{name: bad})
    with pytest.raises(SparseExpertError, match="SSE-E121"):
        KnowledgeFeaturizer(NLP.vocab, None, None, labels=["a"], n_experts=1, max_types_per_entity=bad)


def test_rules_check_warns_about_unbounded_operators(tmp_path: Path) -> None:
    bounded = [[{"LOWER": "box"}, {"LOWER": "office", "OP": "?"}], [{"IS_DIGIT": True, "OP": "{1,4}"}]]
    lines = [json.dumps({"id": f"u{i}", "pattern": p}) for i, p in enumerate(UNBOUNDED)]
    lines += [json.dumps({"id": f"b{i}", "pattern": p}) for i, p in enumerate(bounded)]
    path = tmp_path / "rules.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf8")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert check_rules(path) == []
    messages = [str(w.message) for w in caught if "SSE-W020" in str(w.message)]
    assert len(messages) == len(UNBOUNDED)
    for line, message in enumerate(messages, start=1):
        assert f"{path}, line {line}, field pattern:" in message
    assert all(unbounded_reason(p) is None for p in bounded)


# --- type hierarchies -----------------------------------------------------------------

NAMES = ["Kesterton", "Ambleside", "Wolderby", "Farrowdale", "Quillmoor", "Brackenhurst"]


def _chain_kb(tmp: Path, depth: int) -> Path:
    """C0 <- C1 <- ... <- C{depth}; Kesterton and Ambleside are C{depth}, Wolderby is
    C{depth // 2}; the rest sit in a ladder of diamonds (two classes per level, each a
    subclass of both classes of the level above) and below a class with 500 parents."""
    lines = [f"<{EX}C{i + 1}> {SUB} <{EX}C{i}> ." for i in range(depth)]
    for i in range(1, 200):
        for a in "ab":
            lines += [f"<{EX}D{i}{a}> {SUB} <{EX}D{i - 1}{b}> ." for b in "ab"]
    lines += [f"<{EX}Wide> {SUB} <{EX}P{j}> ." for j in range(500)]
    types = {"Kesterton": f"C{depth}", "Ambleside": f"C{depth}", "Wolderby": f"C{depth // 2}",
             "Farrowdale": "D199a", "Quillmoor": "D199b", "Brackenhurst": "Wide"}
    for name, cls in types.items():
        lines += [f'<{EX}{name}> {LABEL} "{name}" .', f"<{EX}{name}> {TYPE} <{EX}{cls}> ."]
    path = tmp / f"chain{depth}.nt"
    path.write_text("\n".join(lines) + "\n", encoding="utf8")
    return path


def _hierarchy_case(tmp: Path, depth: int, n_chars: int) -> Dict[str, Any]:
    t0 = time.perf_counter()
    kb = import_rdf([_chain_kb(tmp, depth)], tmp / f"kb{depth}")
    t_import = time.perf_counter() - t0
    feat = KnowledgeFeaturizer(NLP.vocab, kb, None, labels=["a"], n_experts=2)
    unit = ["Kesterton", "met", "Ambleside", "and", "Wolderby", "near", "Farrowdale", ",", "Quillmoor", "and",
            "Brackenhurst", "."]
    words = unit * (n_chars // (len(" ".join(unit)) + 1) + 1)
    doc = Doc(NLP.vocab, words=words)
    t1 = time.perf_counter()
    dk = feat(doc)
    per_token = np.diff(dk.ids_indptr)
    return {
        "chars": len(doc.text), "import_s": t_import, "featurize_s": time.perf_counter() - t1,
        "stored": {n: len(kb.types_of(kb.entity_id(EX + n))) for n in NAMES},
        "max_ids": int(per_token.max()),
        "kb_types": {s.text: len(s._.kb_types) for s in list(doc.spans.get("kb_entities", []))[:12]}
        if "kb_entities" in doc.spans else {},
    }


@pytest.mark.parametrize("depth", [10, 300, 3_000, 30_000])
def test_deep_hierarchies_cost_linear_work(tmp_path: Path, depth: int) -> None:
    """A 3,000-level chain made a 50,000-character doc take 44 s and 2 GB: the doc here
    has 1,000,000 characters and the chain up to 30,000 levels."""
    out = run_limited(lambda: _hierarchy_case(tmp_path, depth, 1_000_000), mem_mb=2000, cpu_s=60)
    assert out["chars"] >= 1_000_000
    # the KB keeps the whole closure (kb_type rules see every ancestor) ...
    assert out["stored"]["Kesterton"] == depth + 1 and out["stored"]["Farrowdale"] == 1 + 2 * 199
    assert out["stored"]["Brackenhurst"] == 501
    # ... but a token gets at most 64 types: asserted, then the nearest superclasses
    assert out["max_ids"] <= DEFAULT_MAX_TYPES_PER_ENTITY + 3  # + linked, begin, (ambiguous)
    assert all(n <= DEFAULT_MAX_TYPES_PER_ENTITY for n in out["kb_types"].values())


def test_the_kept_types_are_the_nearest(tmp_path: Path) -> None:
    kb = import_rdf([_chain_kb(tmp_path, 300)], tmp_path / "kb")
    feat = KnowledgeFeaturizer(NLP.vocab, kb, None, labels=["a"], n_experts=2, max_types_per_entity=5)
    assert feat._type_iris(kb.entity_id(EX + "Kesterton")) == tuple(f"{EX}C{i}" for i in (300, 299, 298, 297, 296))
    assert feat._type_iris(kb.entity_id(EX + "Farrowdale")) == tuple(
        f"{EX}D{i}" for i in ("199a", "198a", "198b", "197a", "197b"))


def _random_dag(rng: random.Random) -> nx.DiGraph:
    g = nx.DiGraph()
    n = rng.randint(2, 25)
    g.add_nodes_from(range(n))
    for _ in range(rng.randint(1, 3 * n)):
        a, b = rng.randrange(n), rng.randrange(n)
        if a != b:
            g.add_edge(a, b)  # cycles allowed, as in RDF
    return g


def test_shallow_closures_are_unchanged_and_nearest_first() -> None:
    """Generated class graphs (cycles included): the closure is exactly the networkx
    descendants (minus the class itself), with or without the cap when it is not reached,
    in order of distance."""
    rng = random.Random(7)
    for _ in range(300):
        g = _random_dag(rng)
        sub = np.array([a for a, _ in g.edges()], dtype=np.int64)
        sup = np.array([b for _, b in g.edges()], dtype=np.int64)
        full = superclass_closure(sub, sup, list(g.nodes()))
        capped = superclass_closure(sub, sup, list(g.nodes()), max_superclasses=64)
        for c in g.nodes():
            want = nx.descendants(g, c) - {c}
            assert set(full[c]) == want and len(full[c]) == len(want) and capped[c] == full[c]
            dist = nx.single_source_shortest_path_length(g, c)
            assert [dist[x] for x in full[c]] == sorted(dist[x] for x in full[c])
        small = superclass_closure(sub, sup, list(g.nodes()), max_superclasses=2)
        assert all(small[c] == full[c][:2] for c in g.nodes())


def test_features_of_a_shallow_kb_are_unchanged(kb_small: Any) -> None:
    """The fixture KB is shallow: the cap changes no feature."""
    kb = kb_small
    docs = ["Chelsea beat Arsenal at Stamford Bridge.", "Gordon Brown and Tony Blair met in London."]
    capped = KnowledgeFeaturizer(NLP.vocab, kb, None, labels=["a"], n_experts=2)
    uncapped = KnowledgeFeaturizer(NLP.vocab, kb, None, labels=["a"], n_experts=2, max_types_per_entity=10**9)
    for text in docs:
        a, b = capped(NLP(text)), uncapped(NLP(text))
        assert a.ids.tolist() == b.ids.tolist() and a.ids_indptr.tolist() == b.ids_indptr.tolist()
        assert len(a.ids) > 0


@pytest.fixture(scope="module")
def kb_small(tmp_path_factory: pytest.TempPathFactory) -> Any:
    fixture = Path(__file__).parent.parent / "fixtures" / "features_kb.ttl"
    return import_rdf([fixture], tmp_path_factory.mktemp("kb") / "kb")
