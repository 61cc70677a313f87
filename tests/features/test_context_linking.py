"""Collective (coherence) disambiguation, features/coherence.py: on the tiny linking KB
(tests/fixtures/features_kb.ttl, the shape of the shipped KB around "Chelsea") and, slow,
on the shipped FB15k-237 KB."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

import numpy as np
import pytest
import spacy

from spacy_sparse_expert.features.coherence import MAX_BLOCK, CoherenceDisambiguator, _blocks
from spacy_sparse_expert.features.linker import AliasLinker, LinkerConfig, coherence_matrices
from spacy_sparse_expert.kb.compile import import_rdf
from spacy_sparse_expert.kb.knowledge_base import KnowledgeBase

EX = "http://example.org/"
COHERENCE = LinkerConfig(method="coherence")
PRIOR_ONLY = LinkerConfig(method="coherence", coherence_weight=0.0)


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory, fixtures_dir: Path) -> KnowledgeBase:
    return import_rdf([fixtures_dir / "features_kb.ttl"], tmp_path_factory.mktemp("kb") / "kb")


@pytest.fixture(scope="module")
def nlp():
    return spacy.blank("en")


def links(nlp, kb: KnowledgeBase, text: str, config: Optional[LinkerConfig] = None) -> List[Tuple[str, str]]:
    linker = AliasLinker(nlp.vocab, kb, config=config)
    doc = nlp(text)
    res = linker(doc)
    return [(doc[s:e].text, kb.entities[x].replace(EX, "")) for s, e, x in
            zip(res.starts.tolist(), res.ends.tolist(), res.entities.tolist())]


CHELSEA = "Chelsea beat Arsenal at Stamford Bridge."


def test_prior_only_picks_the_district(nlp, kb: KnowledgeBase) -> None:
    cands = kb.candidates("Chelsea")
    assert cands[0].iri == EX + "ChelseaDistrict" and cands[0].prior > 0.5
    assert links(nlp, kb, CHELSEA, PRIOR_ONLY)[0] == ("Chelsea", "ChelseaDistrict")


def test_coherence_picks_the_club(nlp, kb: KnowledgeBase) -> None:
    assert links(nlp, kb, CHELSEA, COHERENCE) == [("Chelsea", "ChelseaFC"), ("Arsenal", "ArsenalFC"),
                                      ("Stamford Bridge", "StamfordBridge")]
    # no other entity in the doc: nothing to cohere with, the prior decides
    assert links(nlp, kb, "She lives in Chelsea.", COHERENCE) == [("Chelsea", "ChelseaDistrict")]


def test_an_alias_does_not_vote_for_itself(nlp, kb: KnowledgeBase) -> None:
    # three "Chelsea"s are one alias: repetition is no evidence for either reading
    assert {e for _, e in links(nlp, kb, "Chelsea. Chelsea. Chelsea.", COHERENCE)} == {"ChelseaDistrict"}


def test_blocks_bound_the_work() -> None:
    units = [(np.arange(k, dtype=np.int64), np.full(k, 1.0 / k, dtype=np.float32)) for k in [10] * 250]
    blocks = _blocks(units)
    assert sum(len(b) for b in blocks) == 250 and all(sum(len(u[0]) for u in b) <= MAX_BLOCK for b in blocks)
    assert [u for b in blocks for u in b] == units  # consecutive, in order


def test_relatedness_prefers_the_edge(kb: KnowledgeBase) -> None:
    ids = np.array([kb.entity_id(EX + n) for n in ("ChelseaFC", "ChelseaDistrict", "StamfordBridge", "ArsenalFC")])
    cfg = LinkerConfig(method="coherence", edge_weight=1.0, shared_neighbour_weight=1.0, shared_type_weight=1.0)
    rel = CoherenceDisambiguator(kb.entity_arrays, cfg, coherence_matrices(kb)).relatedness(ids)
    assert rel.shape == (4, 4)
    np.testing.assert_allclose(rel, rel.T, atol=1e-9)
    fc, district, bridge, arsenal = range(4)
    assert rel[fc, bridge] > rel[district, bridge]  # Chelsea F.C. -homeGround-> Stamford Bridge
    assert rel[fc, arsenal] > rel[district, arsenal]  # same type, same league, same city
    # each part of the relatedness can be switched off
    off = LinkerConfig(edge_weight=0.0, shared_neighbour_weight=0.0, shared_type_weight=0.0)
    assert not CoherenceDisambiguator(kb.entity_arrays, off).relatedness(ids).any()


def test_default_method_also_picks_the_club(nlp, kb: KnowledgeBase) -> None:
    # the default (chosen on the dev part of the linking set) is the confident-context method
    assert LinkerConfig().method == "confident_context"
    assert links(nlp, kb, CHELSEA)[0] == ("Chelsea", "ChelseaFC")
    with pytest.raises(ValueError, match="SSE-E200.*'nearest'"):
        LinkerConfig(method="nearest")


def test_flat_alias_needs_support(nlp, kb: KnowledgeBase) -> None:
    cfg = LinkerConfig(method="coherence", flat_prior=0.6)  # four "England"s, best prior 0.54: flat
    assert links(nlp, kb, "England won the toss.", cfg) == []
    got = links(nlp, kb, "The England cricket team toured. England won the toss.", cfg)
    assert got[0] == ("England cricket team", "EnglandCricket")


@pytest.mark.slow
def test_shipped_kb_football_context(repo_root: Path, tmp_path: Path, nlp) -> None:
    """The shipped KB (import ~5 s): it has no Arsenal F.C. and no Stamford Bridge, so the
    sentence names clubs it does hold."""
    kb = import_rdf([repo_root / "knowledge" / "fb15k237.nt.gz"], tmp_path / "fbkb")
    chelsea = [c.label for c in kb.candidates("Chelsea")]
    assert chelsea[:2] == ["Chelsea", "Chelsea F.C."]  # the district has the higher prior
    text = "Chelsea held Manchester City to a draw while Newcastle United lost."
    fc = kb.get_entity_id("http://rdf.freebase.com/ns/m.023fb")
    linker = AliasLinker(nlp.vocab, kb, config=COHERENCE)
    prior_only = AliasLinker(nlp.vocab, kb, config=PRIOR_ONLY)
    doc = nlp(text)
    assert int(linker(doc).entities[0]) == fc
    assert int(AliasLinker(nlp.vocab, kb)(doc).entities[0]) == fc  # the default method too
    assert kb.labels[int(prior_only(doc).entities[0])] == "Chelsea"
