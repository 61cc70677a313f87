"""Docs with linked entities survive every way spaCy moves a Doc: pickle, doc.copy(),
Doc.to_bytes, DocBin(store_user_data=True), nlp.pipe(n_process=2), `spacy apply`,
Doc.from_docs; displaCy's span view draws them; predict() writes nothing on the docs."""
from __future__ import annotations

import json
import math
import pickle
import random
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import pytest
from spacy import displacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin, Span
from spacy.vocab import Vocab

from spacy_sparse_expert.features.annotations import (SPANS_KEY, DocAnnotations, LinkedSpanError, rule_hits_of,
                                                      write_annotations)
from spacy_sparse_expert.kb.loaders import load_kb_v1
from spacy_sparse_expert.rules.loaders import load_rules_v1

from .conftest import make_examples, make_nlp, rules_path

EX = "http://example.org/"

# Real sentences over the component KB (tests/fixtures/component_kb.ttl): different
# entities, aliases inside longer aliases ("Labour" in "Labour Party", "Blair" in
# "Tony Blair", "Chelsea" in "Chelsea F.C."), repeats, no links, empty and blank docs.
TEXTS: List[str] = [
    "Chelsea beat Arsenal two nil in the Premier League on Saturday.",
    "Tony Blair told the Labour Party that Gordon Brown would speak in London.",
    "The Labour Party and Labour MPs cheered Blair; Tony Blair smiled.",
    "Chelsea F.C. and Arsenal F.C. are based in London.",
    "Vodafone shares rose after profits beat analysts' forecasts.",
    "",
    "   ",
    "The striker scored twice and the goalkeeper saved a penalty.",
    "Arsenal, Chelsea, Vodafone, Labour, London, Premier League, Gordon Brown.",
]

# what the generated docs are made of: aliases (some inside others), their parts, filler
ALIASES = ["Chelsea", "Chelsea F.C.", "Arsenal", "Arsenal F.C.", "Tony Blair", "Blair", "Gordon Brown",
           "Labour", "Labour Party", "Premier League", "Vodafone", "London", "Tony", "Party", "League"]
FILLER = ["the", "and", "beat", "met", "in", ",", ".", "said", "shares", "club", "\n", "--", "of", "rose"]

LinkSig = Tuple[int, int, str, str, Any, Any, Any]


def link_sig(doc: Doc) -> List[LinkSig]:
    """Everything a linked span carries, through the public accessors."""
    return [(s.start, s.end, s.label_, s.kb_id_, s._.kb_iri, s._.kb_types, s._.kb_prior)
            for s in doc.spans.get(SPANS_KEY, [])]


def full_sig(doc: Doc) -> Tuple[Any, ...]:
    return (doc.text, link_sig(doc), doc._.rule_hits, sorted(doc.cats.items()))


def assert_plain(value: Any, where: str = "user_data") -> None:
    """No Span, Doc or other object in user_data: only what msgpack writes."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert_plain(key, where)
            assert_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, (tuple, list)):
        for item in value:
            assert_plain(item, where)
    else:
        assert value is None or isinstance(value, (str, int, float, bool)), (where, type(value))


@pytest.fixture(scope="module")
def linked_nlp(kb_dir: Path) -> Language:
    nlp = make_nlp(store_routing=True)
    examples = make_examples(nlp)
    nlp.get_pipe("textcat").initialize(
        lambda: examples, nlp=nlp, kb_loader=load_kb_v1(str(kb_dir)),
        rules_loader=load_rules_v1(str(rules_path())))
    return nlp


@pytest.fixture(scope="module")
def docs(linked_nlp: Language) -> List[Doc]:
    return list(linked_nlp.pipe(TEXTS))


@pytest.fixture(scope="module")
def pipeline_dir(linked_nlp: Language, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("linked") / "pipeline"
    linked_nlp.to_disk(path)
    return path


def test_texts_link_different_entities_overlaps_resolved(docs: List[Doc]) -> None:
    iris = {s.kb_id_ for doc in docs for s in doc.spans[SPANS_KEY]}
    assert {EX + name for name in ("ChelseaFC", "ArsenalFC", "TonyBlair", "GordonBrown", "Labour", "London",
                                   "PremierLeague", "Vodafone")} <= iris
    by_text = {doc.text: [(s.text, s.label_, s.kb_id_) for s in doc.spans[SPANS_KEY]] for doc in docs}
    # the longer alias wins where aliases nest; the shorter one links on its own
    assert ("Labour Party", "political party", EX + "Labour") in by_text[TEXTS[1]]
    assert ("Blair", "politician", EX + "TonyBlair") in by_text[TEXTS[2]]
    assert ("Tony Blair", "politician", EX + "TonyBlair") in by_text[TEXTS[2]]
    assert ("Chelsea F.C.", "football club", EX + "ChelseaFC") in by_text[TEXTS[3]]
    for doc in docs:
        spans = list(doc.spans[SPANS_KEY])
        assert all(a.end <= b.start for a, b in zip(spans, spans[1:]))  # sorted, no overlap
        for s in spans:
            assert s._.kb_iri == s.kb_id_ and isinstance(s._.kb_types, tuple) and s._.kb_types
            assert isinstance(s._.kb_prior, float) and 0.0 < s._.kb_prior <= 1.0
            assert doc[s.start:s.end]._.kb_iri == s.kb_id_  # any Span over the same tokens
        assert_plain(doc.user_data)
    for doc in docs[5:7]:
        assert len(doc.spans[SPANS_KEY]) == 0 and doc._.rule_hits == () and not doc._.kb_entities


def test_backward_compatible_accessors(docs: List[Doc]) -> None:
    doc = docs[0]
    ents = doc._.kb_entities
    assert list(ents) == list(doc.spans[SPANS_KEY])
    assert [s.text for s in ents] == ["Chelsea", "Arsenal", "Premier League"]
    assert all(isinstance(s, Span) for s in ents)
    assert all(isinstance(h, tuple) and len(h) == 3 for h in doc._.rule_hits)
    assert ("sport-club", 0, 1) in doc._.rule_hits
    assert doc[3:5]._.kb_iri is None and doc[3:5]._.kb_types is None and doc[3:5]._.kb_prior is None
    fresh = Doc(doc.vocab, words=["x"])
    assert fresh._.kb_entities is None and fresh._.rule_hits is None
    # setting spans the old way still works and lands in doc.spans
    copy = doc.copy()
    copy._.kb_entities = [copy[0:1]]
    assert [s.text for s in copy.spans[SPANS_KEY]] == ["Chelsea"]
    copy._.kb_entities = None
    assert SPANS_KEY not in copy.spans


def test_predict_writes_nothing_set_annotations_writes(linked_nlp: Language) -> None:
    textcat = linked_nlp.get_pipe("textcat")
    docs = [linked_nlp.make_doc(t) for t in TEXTS]
    predictions = textcat.predict(docs)
    for doc in docs:
        assert not doc.cats and SPANS_KEY not in doc.spans and not doc.user_data
    textcat.set_annotations(docs, predictions)
    for doc, want in zip(docs, linked_nlp.pipe(TEXTS)):
        assert full_sig(doc)[:3] == full_sig(want)[:3]
        assert doc.cats == pytest.approx(want.cats, abs=1e-5)
    # split into token budgets: the same annotations, in order
    textcat.max_batch_tokens = 9
    try:
        split = [linked_nlp.make_doc(t) for t in TEXTS]
        textcat.set_annotations(split, textcat.predict(split))
    finally:
        textcat.max_batch_tokens = 0
    assert [link_sig(d) for d in split] == [link_sig(d) for d in docs]


def _pickle(doc: Doc) -> Doc:
    return pickle.loads(pickle.dumps(doc))


def _bytes(doc: Doc) -> Doc:
    return Doc(Vocab()).from_bytes(doc.to_bytes())


def _docbin(doc: Doc) -> Doc:
    data = DocBin(store_user_data=True, docs=[doc]).to_bytes()
    return next(DocBin().from_bytes(data).get_docs(Vocab()))


ROUND_TRIPS: Dict[str, Callable[[Doc], Doc]] = {
    "pickle": _pickle, "copy": lambda doc: doc.copy(), "to_bytes": _bytes, "docbin": _docbin,
}


@pytest.mark.parametrize("how", sorted(ROUND_TRIPS))
def test_round_trips_keep_spans_and_values(docs: List[Doc], how: str) -> None:
    for doc in docs:
        back = ROUND_TRIPS[how](doc)
        assert full_sig(back) == full_sig(doc), how
        twice = ROUND_TRIPS[how](back)  # values read back (lists or tuples) serialise again
        assert full_sig(twice) == full_sig(doc), how
        # the unchecked accessor (annotate's) agrees with the getter on every form stored
        for each in (doc, back, twice):
            assert rule_hits_of(each) == each._.rule_hits, how
            assert all(type(hit) is tuple for hit in rule_hits_of(each)), how


def test_rule_hits_accessor_checks_what_was_not_stored_checked(docs: List[Doc]) -> None:
    fresh = Doc(docs[0].vocab, words=["x", "y"])
    assert rule_hits_of(fresh) == ()
    # lists (as Doc.from_bytes gives back) are checked like the getter checks them
    fresh.user_data[("._.", "rule_hits", None, None)] = [["r", 0, 2]]
    assert rule_hits_of(fresh) == (("r", 0, 2),) == fresh._.rule_hits
    fresh.user_data[("._.", "rule_hits", None, None)] = [["r", 0, 3]]
    with pytest.raises(LinkedSpanError, match="E132"):
        rule_hits_of(fresh)


def _generated_texts(n: int, seed: int) -> List[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        words = [rng.choice(ALIASES if rng.random() < 0.4 else FILLER) for _ in range(rng.randint(0, 30))]
        texts.append(" ".join(words))
    return texts


def test_generated_docs_survive_every_round_trip(linked_nlp: Language) -> None:
    """A family of generated docs: alias words in every order (nested and adjacent
    aliases, repeats), filler, empty ones."""
    texts = _generated_texts(40, seed=13)
    docs = list(linked_nlp.pipe(texts, batch_size=7))
    assert sum(len(doc.spans[SPANS_KEY]) for doc in docs) > 40  # the family does link
    for doc in docs:
        assert_plain(doc.user_data)
        for how, trip in ROUND_TRIPS.items():
            assert full_sig(trip(doc)) == full_sig(doc), (how, doc.text)


def test_n_process_2_gives_the_same_cats_and_spans(linked_nlp: Language) -> None:
    texts = TEXTS * 2 + _generated_texts(10, seed=5)
    single = [full_sig(doc) for doc in linked_nlp.pipe(texts)]
    multi = list(linked_nlp.pipe(texts, n_process=2, batch_size=4))
    assert len(multi) == len(texts)
    for doc, want in zip(multi, single):
        got = full_sig(doc)
        assert got[:3] == want[:3]  # text, linked spans with their values, rule hits
        assert dict(got[3]) == pytest.approx(dict(want[3]), abs=1e-5)
        assert len(doc._.routing) == len(doc)


def test_spacy_apply_writes_docs_that_carry_the_spans(
    linked_nlp: Language, pipeline_dir: Path, tmp_path: Path
) -> None:
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS if t.strip()), encoding="utf8")
    out = tmp_path / "out.spacy"
    run = subprocess.run([sys.executable, "-m", "spacy", "apply", str(pipeline_dir), str(data), str(out)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    got = list(DocBin().from_disk(out).get_docs(linked_nlp.vocab))
    want = [doc for doc in linked_nlp.pipe(t for t in TEXTS if t.strip())]
    assert [d.text for d in got] == [d.text for d in want]
    for doc, ref in zip(got, want):
        assert link_sig(doc) == link_sig(ref) and doc._.rule_hits == ref._.rule_hits
        assert doc.cats == pytest.approx(ref.cats, abs=1e-5)
    assert sum(len(doc.spans[SPANS_KEY]) for doc in got) >= 15


def test_from_docs_shifts_the_spans_and_their_values(docs: List[Doc]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # spaCy drops doc-level values (rule_hits) with W101
        merged = Doc.from_docs(docs[:5])
    want = [(s.text, s.label_, s.kb_id_, s._.kb_types, s._.kb_prior) for d in docs[:5] for s in d.spans[SPANS_KEY]]
    got = [(s.text, s.label_, s.kb_id_, s._.kb_types, s._.kb_prior) for s in merged.spans[SPANS_KEY]]
    assert got == want and all(s._.kb_iri == s.kb_id_ for s in merged.spans[SPANS_KEY])


def test_displacy_span_view(docs: List[Doc]) -> None:
    for doc in docs:
        if len(doc.spans[SPANS_KEY]) == 0:
            with pytest.warns(UserWarning, match="W117"):  # spaCy's "no spans", not a failure
                displacy.render(doc, style="span", options={"spans_key": SPANS_KEY}, jupyter=False)
            continue
        html = displacy.render(doc, style="span", options={"spans_key": SPANS_KEY}, jupyter=False)
        for span in doc.spans[SPANS_KEY]:
            assert span.label_ in html
        for token in doc:
            if token.is_alpha:
                assert token.text in html
    assert "football club" in displacy.render(docs[0], style="span", options={"spans_key": SPANS_KEY})


def test_rerun_replaces_links(linked_nlp: Language, docs: List[Doc]) -> None:
    doc = docs[0].copy()
    write_annotations(doc, DocAnnotations.empty())
    assert len(doc.spans[SPANS_KEY]) == 0 and doc._.rule_hits == ()
    assert doc[0:1]._.kb_iri is None  # no stale link under the old offsets
    again = linked_nlp(doc)
    assert link_sig(again) == link_sig(docs[0])


BAD_LINKS = [
    "IRI only", ("x",), (EX + "A", ("t",)), ("", ("t",), 0.5), (5, ("t",), 0.5), (EX + "A", "t", 0.5),
    (EX + "A", (1, 2), 0.5), (EX + "A", ("t",), "high"), (EX + "A", ("t",), math.nan), (EX + "A", ("t",), 2.0),
    (EX + "A", ("t",), -0.1), (EX + "A", ("t",), True), {"iri": EX + "A"},
]


@pytest.mark.parametrize("how", ["direct", "docbin", "to_bytes"])
def test_tampered_link_values_give_a_coded_error(docs: List[Doc], how: str) -> None:
    for bad in BAD_LINKS:
        doc = docs[0].copy()
        doc[0:1]._.kb_link = bad
        if how != "direct":
            try:
                doc = ROUND_TRIPS[how](doc)
            except (TypeError, ValueError):  # msgpack refuses some values outright
                continue
        for getter in ("kb_iri", "kb_types", "kb_prior"):
            with pytest.raises(LinkedSpanError, match=r"SSE-E130.*Chelsea.*tokens 0-1"):
                getattr(doc[0:1]._, getter)
        assert doc[2:3]._.kb_iri == EX + "ArsenalFC"  # the rest of the doc still reads


BAD_HITS = [
    "rule", 5, (("r", 0),), (("r", 0, 99),), (("r", 3, 3),), ((7, 0, 1),), (("r", "0", 1),), (("r", -1, 1),),
]


def test_bad_rule_hits_give_a_coded_error(docs: List[Doc]) -> None:
    for bad in BAD_HITS:
        doc = docs[0].copy()
        with pytest.raises(LinkedSpanError, match=r"SSE-E132"):
            doc._.rule_hits = bad
        assert doc._.rule_hits == docs[0]._.rule_hits  # refused: nothing changed
        doc.user_data[("._.", "rule_hits", None, None)] = bad  # as a foreign DocBin would
        with pytest.raises(LinkedSpanError, match=r"SSE-E132"):
            doc._.rule_hits
        with pytest.raises(LinkedSpanError, match=r"SSE-E132"):  # annotate's accessor checks them too
            rule_hits_of(doc)


def test_setting_foreign_spans_gives_a_coded_error(docs: List[Doc]) -> None:
    doc, other = docs[0].copy(), docs[1]
    for bad in ([other[0:1]], [doc[0:1], "Chelsea"], [(0, 1)]):
        with pytest.raises(LinkedSpanError, match=r"SSE-E131"):
            doc._.kb_entities = bad
        assert link_sig(doc) == link_sig(docs[0])
