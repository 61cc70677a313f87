"""The entity arrays stored in a KB folder (kb/views.py, ``entity_arrays.npz``): written by
`kb import` and `to_disk`, mapped in place at load, the same arrays as a fresh build;
a folder without them (or with a stale or damaged file) still loads the same. And the
derived .npz files read in place (`storage.map_npz`): the alias index is not copied."""
from __future__ import annotations

import json
import mmap
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import spacy

from spacy_sparse_expert.features.features import KnowledgeFeaturizer
from spacy_sparse_expert.kb import storage, views
from spacy_sparse_expert.kb.alias_index import blank_tokenizer_key, read_alias_index
from spacy_sparse_expert.kb.compile import compile_kb, import_rdf
from spacy_sparse_expert.kb.description_words import blank_description_words
from spacy_sparse_expert.kb.knowledge_base import KnowledgeBase
from spacy_sparse_expert.kb.views import EntityArrays, build_entity_arrays

from .test_mmap import _mapped

TEXTS = ["Barack Obama met Angela Merkel in Berlin before flying to Paris.",
         "The film won an award at the Cannes festival; Tom Hanks was there.",
         "London and New York are cities, and the Beatles were a band."]


def assert_same_arrays(got: EntityArrays, want: EntityArrays) -> None:
    for name in views.STORED:
        a, b = getattr(got, name), getattr(want, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert got.features.dtype == want.features.dtype
    np.testing.assert_array_equal(got.features, want.features)
    assert got.type_index == want.type_index and got.predicate_index == want.predicate_index


def _copy(folder: Path, root: Path, name: str) -> Path:
    out = root / name
    shutil.copytree(folder, out)
    return out


@pytest.fixture(scope="module")
def small_dir(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stored") / "kb"
    import_rdf([fixtures_dir / "features_kb.ttl"], out)
    return out


@pytest.mark.parametrize("graph", ["features_kb.ttl", "kb_small.ttl", "shipped"])
def test_import_stores_what_a_fresh_build_gives(graph: str, fixtures_dir: Path, shipped_kb_dir: Path,
                                                tmp_path: Path) -> None:
    if graph == "shipped":
        source, folder = Path(__file__).parents[2] / "knowledge" / "fb15k237.nt.gz", shipped_kb_dir
    else:
        source, folder = fixtures_dir / graph, tmp_path / "kb"
        import_rdf([source], folder)
    assert (folder / storage.ENTITY_ARRAYS_FILE).is_file()
    fresh = build_entity_arrays(compile_kb([source]))  # from scratch, in memory
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        kb = KnowledgeBase.from_disk(folder)
        stored = kb.entity_arrays
    assert_same_arrays(stored, fresh)
    for name in views.STORED:  # used in place, each at a multiple of 64 bytes
        array = getattr(stored, name)
        assert _mapped(array) and not array.flags.writeable and array.ctypes.data % 64 == 0, name
    # the stored file is an ordinary .npz, and its keys name this KB's files
    with np.load(folder / storage.ENTITY_ARRAYS_FILE, allow_pickle=False) as npz:
        assert sorted(npz.files) == sorted([*views.STORED, "words_indptr", "words", "keys"])
        assert json.loads(str(npz["keys"])) == {"version": views.VERSION, "content_sha256": kb.meta["content_sha256"],
                                                "words_tokenizer": blank_tokenizer_key("en")}
    # and the description words of spaCy's blank English tokenizer, as a fresh tokenizing gives
    words_indptr, words = blank_description_words(kb.descriptions, "en")
    assert stored.words_tokenizer == blank_tokenizer_key("en") and (_mapped(stored.words) or not stored.words.size)
    assert (graph == "shipped") == bool(stored.words.size)  # only the shipped graph has descriptions
    np.testing.assert_array_equal(stored.words_indptr, words_indptr)
    np.testing.assert_array_equal(stored.words, words)


def test_a_folder_without_them_loads_the_same(small_dir: Path, tmp_path: Path) -> None:
    """A KB folder written before the file existed: built at load, the same arrays, the
    same features for text, no warning; saving it again stores them."""
    old = _copy(small_dir, tmp_path, "old")
    (old / storage.ENTITY_ARRAYS_FILE).unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        built = KnowledgeBase.from_disk(old)
        stored = KnowledgeBase.from_disk(small_dir)
        assert_same_arrays(built.entity_arrays, stored.entity_arrays)
        assert not _mapped(built.entity_arrays.nbrs) and _mapped(stored.entity_arrays.nbrs)
        nlp = spacy.blank("en")
        featurizers = [KnowledgeFeaturizer(nlp.vocab, kb, None, labels=["a", "b"], n_experts=4, max_types_per_entity=2)
                       for kb in (built, stored)]
    batches = [f.pipe([nlp(text) for text in TEXTS]) for f in featurizers]
    assert batches[0].ids.size > 0
    for a, b in zip(batches[0].flat_inputs().values(), batches[1].flat_inputs().values()):
        np.testing.assert_array_equal(a, b)
    built.to_disk(tmp_path / "saved")  # e.g. nlp.to_disk copying the KB: stored again
    assert_same_arrays(KnowledgeBase.from_disk(tmp_path / "saved").entity_arrays, stored.entity_arrays)
    assert _mapped(KnowledgeBase.from_disk(tmp_path / "saved").entity_arrays.types)


def test_a_file_of_other_kb_files_is_not_used(small_dir: Path, fixtures_dir: Path, tmp_path: Path) -> None:
    """A file left beside a KB that was written again, or written by another version of
    the derivation, is stale: built again, silently, never used."""
    other = tmp_path / "other"
    import_rdf([fixtures_dir / "kb_small.ttl"], other)
    mixed = _copy(small_dir, tmp_path, "mixed")
    shutil.copy2(other / storage.ENTITY_ARRAYS_FILE, mixed / storage.ENTITY_ARRAYS_FILE)
    want = build_entity_arrays(KnowledgeBase.from_disk(small_dir))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = KnowledgeBase.from_disk(mixed).entity_arrays
    assert_same_arrays(got, want)
    assert not _mapped(got.nbrs)
    kb = KnowledgeBase.from_disk(small_dir)
    future = views.stored_arrays(kb.entity_arrays, kb.meta["content_sha256"])
    future["keys"] = np.array(json.dumps({"version": views.VERSION + 1, "content_sha256": kb.meta["content_sha256"]}))
    newer = _copy(small_dir, tmp_path, "newer")
    storage.write_aligned_arrays(newer, storage.ENTITY_ARRAYS_FILE, future)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not _mapped(KnowledgeBase.from_disk(newer).entity_arrays.nbrs)


def _rewrite(change: Callable[[dict[str, np.ndarray]], None]) -> Callable[[Path], None]:
    def tamper(folder: Path) -> None:
        with np.load(folder / storage.ENTITY_ARRAYS_FILE, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        change(arrays)
        (folder / storage.ENTITY_ARRAYS_FILE).unlink()  # never rewrite a file in place that might be mapped
        storage.write_aligned_arrays(folder, storage.ENTITY_ARRAYS_FILE, arrays)
    return tamper


def _bytes(change: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def tamper(folder: Path) -> None:
        data = (folder / storage.ENTITY_ARRAYS_FILE).read_bytes()
        (folder / storage.ENTITY_ARRAYS_FILE).unlink()
        (folder / storage.ENTITY_ARRAYS_FILE).write_bytes(change(data))
    return tamper


def _set(name: str, value: Callable[[np.ndarray], np.ndarray]) -> Callable[[dict[str, np.ndarray]], None]:
    return lambda arrays: arrays.__setitem__(name, value(arrays[name]))


DAMAGED = {  # damage -> what W081 names
    "truncated": (_bytes(lambda b: b[: len(b) // 2]), r"entity_arrays\.npz"),
    "empty": (_bytes(lambda b: b""), r"empty"),
    "not a zip": (_bytes(lambda b: b"\x00" * len(b)), r"entity_arrays\.npz"),
    "keys unreadable": (_rewrite(_set("keys", lambda k: np.array("{not json"))), r"keys are unreadable"),
    "an array missing": (_rewrite(lambda a: a.pop("nbrs")), r"'nbrs' is missing"),
    "wrong dtype": (_rewrite(_set("types", lambda x: x.astype(np.int32))), r"'types' is int32"),
    "short index array": (_rewrite(_set("preds_indptr", lambda x: x[:-1])), r"'preds_indptr' does not index"),
    "index array falls": (_rewrite(_set("nbr_indptr", lambda x: np.concatenate([x[:1], x[2:3], x[1:2], x[3:]]))),
                          r"'nbr_indptr' does not index"),
    "id out of range": (_rewrite(_set("nbrs", lambda x: x + 10_000)), r"'nbrs' holds ids outside"),
    "negative id": (_rewrite(_set("types", lambda x: x - 1)), r"'types' holds ids outside"),
    "idf not finite": (_rewrite(_set("type_idf", lambda x: x * np.float32(np.inf))), r"'type_idf' is not"),
    "compressed": (lambda folder: np.savez_compressed(folder / storage.ENTITY_ARRAYS_FILE, **np.load(
        folder / storage.ENTITY_ARRAYS_FILE)), r"compressed"),
}


@pytest.mark.parametrize("case", sorted(DAMAGED))
def test_a_damaged_file_is_named_and_built_again(case: str, small_dir: Path, tmp_path: Path) -> None:
    tamper, reason = DAMAGED[case]
    folder = _copy(small_dir, tmp_path, "kb")
    tamper(folder)
    kb = KnowledgeBase.from_disk(folder)  # the load itself reads no derived file
    with pytest.warns(UserWarning, match=r"SSE-W081") as record:
        got = kb.entity_arrays
    message = str(record[0].message)
    assert f"{folder}/{storage.ENTITY_ARRAYS_FILE}" in message and __import__("re").search(reason, message), message
    assert_same_arrays(got, build_entity_arrays(KnowledgeBase.from_disk(small_dir)))


def test_format_1_stores_none_and_drops_a_stale_file(small_dir: Path, tmp_path: Path) -> None:
    folder = _copy(small_dir, tmp_path, "kb")
    kb = KnowledgeBase.from_disk(small_dir)
    kb.to_disk(folder, format_version=1)  # no content digest to key them with
    assert not (folder / storage.ENTITY_ARRAYS_FILE).exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same_arrays(KnowledgeBase.from_disk(folder).entity_arrays, kb.entity_arrays)


# --- derived .npz files read in place --------------------------------------------------------


def test_the_alias_index_is_used_in_place(small_dir: Path) -> None:
    """Loading maps the alias index (np.savez's file, members unaligned) instead of
    reading it into memory; the arrays are those the copying reader finds."""
    index = KnowledgeBase.from_disk(small_dir).alias_index
    copied = read_alias_index(small_dir)
    assert index is not None and copied is not None
    assert (index.tokenizer, index.aliases) == (copied.tokenizer, copied.aliases)
    for name, array in copied.arrays.items():
        assert _mapped(index.arrays[name]) and not index.arrays[name].flags.writeable, name
        assert index.arrays[name].dtype == array.dtype
        np.testing.assert_array_equal(index.arrays[name], array)


def test_map_npz_reads_what_numpy_writes(tmp_path: Path) -> None:
    arrays = {"ints": np.arange(1000, dtype=np.int64), "flags": np.arange(7) % 2 == 0, "empty": np.zeros(0, np.float32),
              "matrix": np.arange(12, dtype=np.float32).reshape(3, 4), "text": np.array('{"a": 1}')}
    np.savez(tmp_path / "numpy.npz", **arrays)
    storage.write_aligned_arrays(tmp_path, "aligned.npz", arrays)
    storage.write_aligned_arrays(tmp_path, "again.npz", arrays)
    assert (tmp_path / "aligned.npz").read_bytes() == (tmp_path / "again.npz").read_bytes()  # no time stamps
    with np.load(tmp_path / "aligned.npz", allow_pickle=False) as npz:  # a standard archive
        assert sorted(npz.files) == sorted(arrays)
        for name, array in arrays.items():
            np.testing.assert_array_equal(npz[name], array)
    for name in ("numpy.npz", "aligned.npz"):
        with open(tmp_path / name, "rb") as fh:
            mapped = storage.map_npz(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ), name)
        assert sorted(mapped) == sorted(arrays)
        for key, array in arrays.items():
            assert mapped[key].dtype == array.dtype and mapped[key].shape == array.shape, (name, key)
            np.testing.assert_array_equal(mapped[key], array)
        if name == "aligned.npz":
            assert all(a.ctypes.data % 64 == 0 for a in mapped.values() if a.size)


def test_map_npz_refuses_what_it_cannot_map(tmp_path: Path) -> None:
    np.savez_compressed(tmp_path / "small.npz", x=np.arange(10))
    with open(tmp_path / "small.npz", "rb") as fh:
        with pytest.raises(ValueError, match=r"small\.npz: member 'x\.npy' is compressed"):
            storage.map_npz(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ), "small.npz")
    storage.write_aligned_arrays(tmp_path, "long.npz", {"x": np.arange(1000)})
    data = bytearray((tmp_path / "long.npz").read_bytes())
    entry = data.index(b"PK\x01\x02")  # the member's central directory entry claims 4 kB more
    for at in (entry + 20, entry + 24):  # compressed and uncompressed size
        data[at:at + 4] = (int.from_bytes(data[at:at + 4], "little") + 4096).to_bytes(4, "little")
    (tmp_path / "long.npz").write_bytes(bytes(data))
    with open(tmp_path / "long.npz", "rb") as fh:
        with pytest.raises(ValueError, match=r"long\.npz: member 'x\.npy' ends past the end of the file"):
            storage.map_npz(mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ), "long.npz")
