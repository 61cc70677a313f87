"""Entities where spaCy users look for them: with an NER earlier in the pipeline, the
entities the linker resolved get `kb_id_` (as spaCy's entity_linker sets it), and the
linked spans render in displaCy's span view.

The NER here is spaCy's `entity_ruler` with hand-written patterns: no trained pipeline
(en_core_web_sm) can be downloaded in the test environment, and a ruler gives the exact
entity bounds each case needs (one equal to a link, one wider, one the KB does not know).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import pytest
from spacy import displacy
from spacy.language import Language
from spacy.tokens import Doc

from spacy_sparse_expert.features.annotations import SPANS_KEY, DocAnnotations, write_annotations
from spacy_sparse_expert.kb.loaders import load_kb_v1

from .conftest import make_examples, make_nlp

EX = "http://example.org/"
PATTERNS = [
    {"label": "PERSON", "pattern": "Tony Blair"},
    {"label": "PERSON", "pattern": "Gordon Brown"},
    {"label": "ORG", "pattern": "Labour Party"},
    {"label": "ORG", "pattern": "Chelsea"},
    {"label": "GPE", "pattern": "London"},
    # wider than the KB's alias "Premier League": spaCy links whole entities only
    {"label": "ORG", "pattern": [{"LOWER": "the"}, {"LOWER": "premier"}, {"LOWER": "league"}]},
    # an entity the KB does not know
    {"label": "DATE", "pattern": "Saturday"},
]
TEXT = "Tony Blair told the Labour Party in London that Chelsea won the Premier League on Saturday."


@pytest.fixture(scope="module")
def nlp(kb_dir: Path) -> Language:
    nlp = make_nlp()
    ruler = nlp.add_pipe("entity_ruler", before="textcat")
    ruler.add_patterns(PATTERNS)
    examples = make_examples(nlp)
    nlp.get_pipe("textcat").initialize(lambda: examples, nlp=nlp, kb_loader=load_kb_v1(str(kb_dir)))
    return nlp


def ent_ids(doc: Doc) -> Dict[str, str]:
    return {ent.text: ent.kb_id_ for ent in doc.ents}


def test_resolved_entities_get_kb_ids(nlp: Language) -> None:
    doc = nlp(TEXT)
    assert [ent.label_ for ent in doc.ents] == ["PERSON", "ORG", "GPE", "ORG", "ORG", "DATE"]
    assert ent_ids(doc) == {
        "Tony Blair": EX + "TonyBlair",
        "Labour Party": EX + "Labour",
        "London": EX + "London",
        "Chelsea": EX + "ChelseaFC",
        "the Premier League": "",  # the link covers "Premier League" only
        "Saturday": "",
    }
    # spaCy keeps an entity's kb_id on its tokens, where its own entity_linker writes it
    assert [t.ent_kb_id_ for t in doc[0:2]] == [EX + "TonyBlair"] * 2
    linked = {s.text: s.kb_id_ for s in doc.spans[SPANS_KEY]}
    assert linked["Premier League"] == EX + "PremierLeague"
    # every entity with a kb_id is a linked span with the same bounds and IRI
    spans = {(s.start, s.end, s.kb_id_) for s in doc.spans[SPANS_KEY]}
    assert all((e.start, e.end, e.kb_id_) in spans for e in doc.ents if e.kb_id_)


def test_kb_ids_survive_serialisation(nlp: Language) -> None:
    doc = nlp(TEXT)
    back = Doc(nlp.vocab).from_bytes(doc.to_bytes())
    assert ent_ids(back) == ent_ids(doc)


def test_another_linkers_kb_id_is_kept(nlp: Language) -> None:
    doc = nlp.get_pipe("entity_ruler")(nlp.make_doc(TEXT))
    chelsea = next(ent for ent in doc.ents if ent.text == "Chelsea")
    for token in chelsea:
        token.ent_kb_id_ = "Q9616"  # what spaCy's entity_linker with a Wikidata KB would write
    doc = nlp.get_pipe("textcat")(doc)
    assert ent_ids(doc)["Chelsea"] == "Q9616"
    assert ent_ids(doc)["London"] == EX + "London"


def test_rerun_clears_kb_ids_it_set(nlp: Language) -> None:
    doc = nlp(TEXT)
    write_annotations(doc, DocAnnotations.empty())  # a run that links nothing, e.g. another KB
    assert set(ent_ids(doc).values()) == {""}
    doc = nlp.get_pipe("textcat")(doc)
    assert ent_ids(doc)["Tony Blair"] == EX + "TonyBlair"


def test_without_an_ner_there_are_no_entities_but_links(kb_dir: Path) -> None:
    plain = make_nlp()
    plain.get_pipe("textcat").initialize(lambda: make_examples(plain), nlp=plain,
                                          kb_loader=load_kb_v1(str(kb_dir)))
    doc = plain(TEXT)
    assert doc.ents == ()
    assert {s.text for s in doc.spans[SPANS_KEY]} >= {"Tony Blair", "Labour Party", "Chelsea", "London"}


def test_displacy_renders_links_and_entity_kb_ids(nlp: Language) -> None:
    doc = nlp(TEXT)
    spans_html = displacy.render(doc, style="span", options={"spans_key": SPANS_KEY}, jupyter=False)
    for span in doc.spans[SPANS_KEY]:
        assert span.label_ in spans_html
    assert "politician" in spans_html and "football club" in spans_html
    # the ent view links each entity's kb_id through kb_url_template ("{}": the IRI itself)
    ents_html = displacy.render(doc, style="ent", options={"kb_url_template": "{}"}, jupyter=False)
    linked: List[str] = [ent.kb_id_ for ent in doc.ents if ent.kb_id_]
    assert len(linked) == 4
    for iri in linked:
        assert f'href="{iri}"' in ents_html
