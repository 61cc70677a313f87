"""KB views live on the KB object: `entity_arrays` built once and equal to what the arrays
say, `get_type_id` / `get_predicate_id` (all that rule validation asks of a KB, `KBLike`),
and `derived` for text-side structures built once per KB (the alias linker)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from spacy_sparse_expert.errors import RuleFileError
from spacy_sparse_expert.features.linker import LinkerConfig, get_linker
from spacy_sparse_expert.kb.compile import compile_kb
from spacy_sparse_expert.kb.knowledge_base import KnowledgeBase
from spacy_sparse_expert.rules.records import KBLike
from spacy_sparse_expert.rules.rules import RuleSet

KB_FILES = ["features_kb.ttl", "kb_small.ttl", "component_kb.ttl", "rules_kb.ttl"]


@pytest.fixture(scope="module", params=KB_FILES)
def any_kb(request: pytest.FixtureRequest, fixtures_dir: Path) -> KnowledgeBase:
    return compile_kb([fixtures_dir / request.param])


def test_entity_arrays_built_once_and_match_the_kb(any_kb: KnowledgeBase) -> None:
    arrays = any_kb.entity_arrays
    assert any_kb.entity_arrays is arrays
    for e in range(any_kb.n_entities):
        types = arrays.types[arrays.types_indptr[e]:arrays.types_indptr[e + 1]]
        assert sorted(types.tolist()) == sorted(any_kb.types_of(e).tolist())
        preds = arrays.preds[arrays.preds_indptr[e]:arrays.preds_indptr[e + 1]]
        assert preds.tolist() == sorted({int(p) for p, _ in any_kb.relations_of(e)})
        nbrs = set(arrays.nbrs[arrays.nbr_indptr[e]:arrays.nbr_indptr[e + 1]].tolist())
        out = {int(o) for _, o in any_kb.relations_of(e)}
        into = {s for s in range(any_kb.n_entities) for _, o in any_kb.relations_of(s) if o == e}
        assert nbrs == out | into
    assert np.array_equal(arrays.features, any_kb.feature_matrix)


def test_type_and_predicate_ids(any_kb: KnowledgeBase) -> None:
    for i, iri in enumerate(any_kb.types):
        assert any_kb.get_type_id(iri) == i and any_kb.entity_arrays.type_index[iri] == i
    for i, iri in enumerate(any_kb.predicates):
        assert any_kb.get_predicate_id(iri) == i
    assert any_kb.get_type_id("http://example.org/not-a-type") is None
    assert any_kb.get_predicate_id("http://example.org/not-a-predicate") is None


def test_knowledge_base_is_what_rules_ask_for(any_kb: KnowledgeBase) -> None:
    kb: KBLike = any_kb  # type-checks: KBLike asks only for what KnowledgeBase has
    lines = [json.dumps({"id": f"t{i}", "kb_type": iri, "labels": {"a": 1.0}}) for i, iri in enumerate(kb.types)]
    lines += [json.dumps({"id": f"p{i}", "kb_relation": iri, "labels": {"a": 1.0}})
              for i, iri in enumerate(any_kb.predicates)]
    assert len(RuleSet.from_jsonl("\n".join(lines), kb=kb)) == len(lines)
    for field in ("kb_type", "kb_relation"):
        bad = json.dumps({"id": "x", field: "http://example.org/missing", "labels": {"a": 1.0}})
        with pytest.raises(RuleFileError) as info:
            RuleSet.from_jsonl(bad, kb=kb)
        assert [p.field for p in info.value.problems] == [field]
    assert not [name for name in vars(any_kb) if name.startswith("_sse_")]  # nothing bolted on


def test_derived_builds_once_per_key(any_kb: KnowledgeBase) -> None:
    calls: list[int] = []

    def build() -> object:
        calls.append(1)
        return object()

    first = any_kb.derived(("test", 1), build)
    assert any_kb.derived(("test", 1), build) is first and len(calls) == 1
    assert any_kb.derived(("test", 2), build) is not first and len(calls) == 2


def test_linker_built_once_per_kb_vocab_and_config(kb: KnowledgeBase, nlp) -> None:
    import spacy

    a = get_linker(nlp.vocab, kb)
    assert get_linker(nlp.vocab, kb) is a
    assert get_linker(nlp.vocab, kb, LinkerConfig(min_alias_chars=5)) is not a
    assert get_linker(spacy.blank("en").vocab, kb) is not a
    other_kb = KnowledgeBase.from_bytes(kb.to_bytes())  # an equal KB has its own linker
    assert get_linker(nlp.vocab, other_kb) is not a
