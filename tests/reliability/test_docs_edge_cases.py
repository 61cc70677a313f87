"""Documents at the edges: empty, whitespace only, emoji, CJK, right-to-left and bidi
controls, a 1,000,000-character document (spaCy's default nlp.max_length) and batches
mixing them. Every doc gets valid cats (one finite score in [0, 1] per label, summing to
1 for exclusive classes) and a batch gives what the docs give one by one. Batches are
run in parts of at most `max_batch_tokens` tokens, so long docs do not add up in memory;
beyond nlp.max_length spaCy's own E088 is the clear, configurable limit."""
from __future__ import annotations

import math
from pathlib import Path

import pytest
import spacy

from spacy_sparse_expert.kb.compile import compile_kb
from spacy_sparse_expert.kb.loaders import load_kb_v1
from spacy_sparse_expert.rules.loaders import load_rules_v1

from ..pipeline.conftest import LABELS, kb_path, make_examples, make_nlp, rules_path

EDGE_TEXTS = [
    "",
    " ",
    "\n\n\t  \r\n",
    "\u200b\u200c\u200d\ufeff",                                   # zero-width characters only
    "🎉🔥👍🏽 👨‍👩‍👧‍👦 🇬🇧",  # emoji, modifiers, ZWJ sequences, flags
    "東京は日本の首都です。中国经济增长放缓。서울은 한국의 수도입니다.",  # CJK without spaces
    "مرحبا بالعالم، قال توني بلير في لندن",                      # Arabic, right to left
    "שלום עולם \u202eChelsea\u202c beat Arsenal",                # Hebrew and a bidi override
    "e\u0301\u0301\u0301 Z\u0351\u0357\u0344\u0300 a\x00b",    # stacked combining marks, NUL
    "Chelsea beat Arsenal in the Premier League. Tony Blair watched.",
]
MILLION = 1_000_000


def assert_valid_cats(cats: dict, exclusive: bool) -> None:
    assert sorted(cats) == LABELS
    assert all(isinstance(v, float) and math.isfinite(v) and 0.0 <= v <= 1.0 for v in cats.values()), cats
    if exclusive:
        assert sum(cats.values()) == pytest.approx(1.0, abs=1e-4)


def million_chars() -> str:
    unit = "Chelsea beat Arsenal 2-0 in the Premier League. 東京 🎉 مرحبا Tony Blair spoke.\n"
    return (unit * (MILLION // len(unit) + 1))[:MILLION]


@pytest.fixture(scope="module")
def kb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kb") / "kb"
    compile_kb([kb_path()]).to_disk(path)
    return path


def knowledge_nlp(factory: str, kb_dir: Path, **config: object) -> spacy.Language:
    nlp = make_nlp(factory, store_routing=True, **config)
    nlp.get_pipe("textcat").initialize(lambda: make_examples(nlp, multilabel=factory.endswith("multilabel")),
                                       nlp=nlp, kb_loader=load_kb_v1(kb_dir), rules_loader=load_rules_v1(rules_path()))
    return nlp


@pytest.mark.parametrize("factory", ["sparse_expert_textcat", "sparse_expert_textcat_multilabel"])
def test_edge_docs_alone_and_in_a_batch(factory: str, kb_dir: Path) -> None:
    nlp = knowledge_nlp(factory, kb_dir)
    exclusive = factory == "sparse_expert_textcat"
    single = [nlp(text) for text in EDGE_TEXTS]
    for doc in single:
        assert_valid_cats(doc.cats, exclusive)
        assert len(doc._.routing) == len(doc)
    batch = list(nlp.pipe(EDGE_TEXTS * 2, batch_size=7))
    for doc, alone in zip(batch, single * 2):
        assert doc.cats == pytest.approx(alone.cats, abs=1e-5)
        assert_same_routing(doc._.routing, alone._.routing)


def assert_same_routing(got: list, want: list) -> None:
    """Same experts per token; weights equal up to float rounding (batch shapes differ)."""
    assert [(i, experts) for i, experts, _ in got] == [(i, experts) for i, experts, _ in want]
    for (_, _, w1), (_, _, w2) in zip(got, want):
        assert w1 == pytest.approx(w2, abs=1e-5)


def test_a_million_characters_in_a_mixed_batch() -> None:
    """The 1,000,000-character doc (>250k tokens) in one batch with the edge docs: the
    batch runs in parts of at most max_batch_tokens tokens, the short docs score as they
    do alone (that parts never change scores is the next test)."""
    nlp = make_nlp(store_routing=True)
    nlp.initialize(lambda: make_examples(nlp))
    assert nlp.max_length == MILLION
    textcat = nlp.get_pipe("textcat")
    assert textcat.max_batch_tokens == 100_000
    big = nlp.make_doc(million_chars())
    assert len(big.text) == MILLION and len(big) > 200_000
    short_alone = [dict(nlp(t).cats) for t in EDGE_TEXTS]
    mixed = [nlp.make_doc(t) for t in EDGE_TEXTS[:5]] + [big] + [nlp.make_doc(t) for t in EDGE_TEXTS[5:]]
    out = list(textcat.pipe(mixed, batch_size=len(mixed)))
    assert_valid_cats(out[5].cats, exclusive=True)
    assert len(out[5]._.routing) == len(big)
    for doc, cats in zip(out[:5] + out[6:], short_alone):
        assert doc.cats == pytest.approx(cats, abs=1e-5)


def test_batch_parts_do_not_change_the_scores(kb_dir: Path) -> None:
    nlp = knowledge_nlp("sparse_expert_textcat", kb_dir)
    textcat = nlp.get_pipe("textcat")
    docs = [nlp.make_doc(t) for t in EDGE_TEXTS * 4]
    whole = textcat.predict(docs)
    textcat.max_batch_tokens = 9  # parts of a few docs; a longer doc is a part of its own
    parts = textcat.predict(docs)
    assert parts["scores"] == pytest.approx(whole["scores"], abs=1e-6)
    # the same experts; their weights equal up to float rounding of a different batch shape
    (idx_parts, w_parts), (idx_whole, w_whole) = parts["routing"], whole["routing"]
    assert idx_parts.shape == idx_whole.shape and (idx_parts == idx_whole).all()
    assert w_parts == pytest.approx(w_whole, abs=1e-6)


def test_longer_than_max_length_is_spacys_clear_limit() -> None:
    nlp = make_nlp()
    nlp.initialize(lambda: make_examples(nlp))
    with pytest.raises(ValueError, match=r"\[E088\].*1000001.*max_length"):
        nlp("x" * (MILLION + 1))


def test_max_batch_tokens_setting() -> None:
    assert make_nlp(max_batch_tokens=0).get_pipe("textcat").max_batch_tokens == 0
    with pytest.raises(ValueError, match=r"SSE-E033.*max_batch_tokens=-1"):
        make_nlp(max_batch_tokens=-1)
    with pytest.raises(ValueError, match=r"max_batch_tokens"):  # spaCy's config validation
        make_nlp(max_batch_tokens=2.5)


@pytest.mark.slow
def test_millions_of_characters_with_knowledge(kb_dir: Path) -> None:
    """With the KB and rules (linking and rule matching over every token), at the default
    limit and at a raised one."""
    nlp = knowledge_nlp("sparse_expert_textcat", kb_dir)
    doc = nlp(million_chars())
    assert_valid_cats(doc.cats, exclusive=True)
    assert len(doc._.kb_entities) > 10_000 and len(doc._.rule_hits) > 10_000
    nlp.max_length = 3 * MILLION
    doc = nlp(million_chars() * 3)
    assert_valid_cats(doc.cats, exclusive=True)
    assert len(doc._.routing) == len(doc)
