"""KB folders of format 2 (kb/storage.py): memory-mapped arrays and string tables, checks
on first use, format 1 still read, the alias index written by the import, and the
content hash a pipeline refers to."""
from __future__ import annotations

import json
import mmap
import os
import pickle
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import spacy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spacy_sparse_expert import KnowledgeBase
from spacy_sparse_expert.errors import KBFormatError, KBImportError
from spacy_sparse_expert.features.linker import AliasLinker, blank_tokenizer
from spacy_sparse_expert.kb import storage
from spacy_sparse_expert.kb.alias_index import aliases_digest, blank_tokenizer_key
from spacy_sparse_expert.kb.compile import compile_kb, import_rdf
from spacy_sparse_expert.kb.knowledge_base import ARRAY_DTYPES, TABLE_NAMES
from spacy_sparse_expert.kb.strings import StringTable, encode_tables

EX = "http://example.org/"


def _mapped(array: np.ndarray) -> bool:
    """Whether `array` is a view of a memory map (not a copy in anonymous memory)."""
    base = array
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    return isinstance(base.obj if isinstance(base, memoryview) else base, mmap.mmap)


def assert_same_content(a: KnowledgeBase, b: KnowledgeBase) -> None:
    for name in TABLE_NAMES:
        assert list(getattr(a, name)) == list(getattr(b, name)), name
    for name in ARRAY_DTYPES:
        assert a.array(name).dtype == b.array(name).dtype, name
        np.testing.assert_array_equal(a.array(name), b.array(name))


@pytest.fixture(scope="module")
def compiled(fixtures_dir: Path) -> KnowledgeBase:
    return compile_kb([fixtures_dir / "kb_small.ttl"])


@pytest.fixture()
def v2_dir(compiled: KnowledgeBase, tmp_path: Path) -> Path:
    compiled.to_disk(tmp_path / "kb")
    return tmp_path / "kb"


def test_storage_and_kb_name_the_same_arrays_and_tables() -> None:
    assert tuple(ARRAY_DTYPES) == storage.ARRAY_NAMES and TABLE_NAMES == storage.TABLE_NAMES


def test_format_2_folder_is_memory_mapped(compiled: KnowledgeBase, v2_dir: Path) -> None:
    assert sorted(p.name for p in v2_dir.iterdir()) == sorted([*storage.KB_FILES_V2, storage.ENTITY_ARRAYS_FILE])
    kb = KnowledgeBase.from_disk(v2_dir)
    assert kb.meta["format_version"] == 2 and len(kb.meta["content_sha256"]) == 64
    assert all(_mapped(kb.array(name)) for name in ARRAY_DTYPES if kb.array(name).size)
    assert all(isinstance(getattr(kb, name), StringTable) for name in TABLE_NAMES if name != "feature_names")
    assert_same_content(compiled, kb)
    for text in ("london", "tony blair", "Labour", "nothing like it"):
        assert kb.candidates(text) == compiled.candidates(text)
        assert kb.lookup(text) == compiled.lookup(text)
    tony = compiled.entity_id(EX + "tony_blair")
    assert kb.entity_id(EX + "tony_blair") == tony and (EX + "tony_blair") in kb
    assert kb.entity(EX + "tony_blair") == compiled.entity(EX + "tony_blair")
    np.testing.assert_array_equal(kb.feature_matrix, compiled.feature_matrix)
    assert kb.graph().number_of_edges() == compiled.graph().number_of_edges()
    # format 2 -> bytes -> format 2: the same KB
    assert_same_content(KnowledgeBase.from_bytes(kb.to_bytes()), compiled)


def test_loading_defers_the_checks_and_indexes(v2_dir: Path) -> None:
    """from_disk checks shapes only; value checks and dictionaries wait for first use."""
    kb = KnowledgeBase.from_disk(v2_dir)
    assert kb._arrays.checked == set() and "_entity_index" not in kb.__dict__ and "_alias_index" not in kb.__dict__
    kb.alias_candidates(0)
    assert kb._arrays.checked == {"aliases"}
    kb.get_entity_id(EX + "london")
    assert "_entity_index" in kb.__dict__
    kb.check_all()
    assert kb._arrays.checked == {"aliases", "types", "relations", "features"}


def test_format_1_is_still_read(compiled: KnowledgeBase, tmp_path: Path) -> None:
    compiled.to_disk(tmp_path / "old", format_version=1)
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == sorted(storage.KB_FILES_V1)
    old = KnowledgeBase.from_disk(tmp_path / "old")
    assert old.meta["format_version"] == 1 and isinstance(old.entities, list)
    assert_same_content(old, compiled)
    # and a format 1 folder rewritten as format 2 in place holds only format 2 files
    old.to_disk(tmp_path / "old")
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == sorted([*storage.KB_FILES_V2,
                                                                          storage.ENTITY_ARRAYS_FILE])
    assert_same_content(KnowledgeBase.from_disk(tmp_path / "old"), compiled)


def test_rewriting_the_folder_a_kb_is_mapped_from(compiled: KnowledgeBase, v2_dir: Path) -> None:
    """to_disk replaces each file by a rename: the mapped (old) files stay whole."""
    kb = KnowledgeBase.from_disk(v2_dir)
    other = compile_kb([Path(__file__).parent.parent / "fixtures" / "accents_kb.ttl"])
    other.to_disk(v2_dir)
    assert_same_content(kb, compiled)  # still the KB it was loaded as
    assert_same_content(KnowledgeBase.from_disk(v2_dir), other)
    kb.to_disk(v2_dir)  # a mapped KB written over the folder it was read from
    assert_same_content(KnowledgeBase.from_disk(v2_dir), compiled)


def test_strings_round_trip_any_text(tmp_path: Path) -> None:
    texts = ["", "São Paulo", "東京", "a\x00b", "lone \udcff surrogate", "emoji 😀"]
    blob, offsets, rows = encode_tables({"t": texts}, ["t"])
    table = StringTable(blob, offsets, *rows["t"], name="t", where="memory")
    assert list(table) == texts and table[-1] == texts[-1] and table[1:3] == texts[1:3] and table == texts
    assert aliases_digest(table) == aliases_digest(texts)
    with pytest.raises(IndexError):
        table[len(texts)]


def test_a_mapped_table_is_deep_copied_as_itself_and_pickled_as_its_bytes(v2_dir: Path) -> None:
    """A linker keeps the KB's alias surfaces (a mapped StringTable): spaCy deep-copies the
    model holding it (resume_training) and multiprocessing pickles it."""
    import copy

    table = KnowledgeBase.from_disk(v2_dir).alias_surfaces
    assert isinstance(table, StringTable) and copy.deepcopy(table) is table
    restored = pickle.loads(pickle.dumps(table))
    assert isinstance(restored, StringTable) and list(restored) == list(table) and len(restored) == len(table)
    assert (restored.name, restored.where) == (table.name, table.where)
    assert aliases_digest(restored) == aliases_digest(table)


def test_content_hash_is_the_same_for_the_same_graph(fixtures_dir: Path, tmp_path: Path) -> None:
    a = import_rdf([fixtures_dir / "kb_small.ttl"], tmp_path / "a", alias_index_lang=None)
    b = import_rdf([fixtures_dir / "kb_small.ttl"], tmp_path / "b", alias_index_lang=None)
    c = import_rdf([fixtures_dir / "accents_kb.ttl"], tmp_path / "c", alias_index_lang=None)
    assert a.meta["content_sha256"] == b.meta["content_sha256"] != c.meta["content_sha256"]
    assert json.loads((tmp_path / "a" / "meta.json").read_text())["content_sha256"] == a.meta["content_sha256"]


# --- the alias index written by the import --------------------------------------------------


def test_import_writes_the_blank_english_alias_index(fixtures_dir: Path, tmp_path: Path) -> None:
    """A pipeline's linker finds the index it needs: no tokenizing, no W200, and the KB
    folder is not changed after the import."""
    out = tmp_path / "kb"
    import_rdf([fixtures_dir / "accents_kb.ttl"], out)
    assert (out / storage.ALIAS_INDEX_FILE).is_file()
    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    kb = KnowledgeBase.from_disk(out)
    assert kb._alias_index_reader is not None  # mapped at load, read on first access
    nlp = spacy.blank("en")
    vocab = nlp.vocab
    assert kb.alias_index is not None and kb.alias_index.tokenizer == blank_tokenizer_key("en")
    assert blank_tokenizer(vocab).alias_index_key == blank_tokenizer_key("en")  # type: ignore[attr-defined]
    index = kb.alias_index
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # W200 would say the aliases were tokenized now
        linker = AliasLinker(vocab, kb)
    assert kb.alias_index is index
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
    # the same links as a linker that tokenized the aliases itself
    fresh = compile_kb([fixtures_dir / "accents_kb.ttl"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = AliasLinker(vocab, fresh)
    doc = nlp("They flew from Sao Paulo to Zürich and on to Malmo.")
    got, want = linker(doc), reference(doc)
    assert got.entities.tolist() == want.entities.tolist() and got.starts.tolist() == want.starts.tolist()
    assert len(got.entities) >= 2


def test_import_without_alias_index(fixtures_dir: Path, tmp_path: Path) -> None:
    import_rdf([fixtures_dir / "kb_small.ttl"], tmp_path / "kb", alias_index_lang=None)
    assert not (tmp_path / "kb" / storage.ALIAS_INDEX_FILE).exists()


def test_alias_index_of_another_language(fixtures_dir: Path, tmp_path: Path) -> None:
    kb = import_rdf([fixtures_dir / "kb_small.ttl"], tmp_path / "kb", alias_index_lang="de")
    assert KnowledgeBase.from_disk(tmp_path / "kb").alias_index.tokenizer == blank_tokenizer_key("de") != \
        blank_tokenizer_key("en")
    assert kb.alias_index is not None
    # a language spaCy lacks fails before anything is parsed or written
    with pytest.raises(KBImportError, match=r"SSE-E273.*'qq'.*--alias-index none"):
        import_rdf([fixtures_dir / "kb_small.ttl"], tmp_path / "other", alias_index_lang="qq")
    assert not (tmp_path / "other").exists()


def test_kb_import_cli_alias_index_option(fixtures_dir: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from spacy_sparse_expert.cli.main import app

    runner = CliRunner()
    done = runner.invoke(app, ["kb", "import", str(fixtures_dir / "kb_small.ttl"), "-o", str(tmp_path / "a"), "-q"])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "a" / storage.ALIAS_INDEX_FILE).is_file()
    done = runner.invoke(app, ["kb", "import", str(fixtures_dir / "kb_small.ttl"), "-o", str(tmp_path / "b"), "-q",
                               "--alias-index", "none"])
    assert done.exit_code == 0 and not (tmp_path / "b" / storage.ALIAS_INDEX_FILE).exists()
    bad = runner.invoke(app, ["kb", "import", str(fixtures_dir / "kb_small.ttl"), "-o", str(tmp_path / "c"),
                              "--alias-index", "qq"])
    assert bad.exit_code == 1 and "SSE-E273" in bad.output and not (tmp_path / "c").exists()


# --- damaged format 2 folders -------------------------------------------------------------


def _rewrite_npy(name: str, change: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    def tamper(path: Path) -> None:
        array = np.load(path / f"{name}.npy", allow_pickle=False)
        (path / f"{name}.npy").unlink()  # never rewrite a file in place that might be mapped
        np.save(path / f"{name}.npy", change(array))
    return tamper


def _replace(name: str, data: Callable[[bytes], bytes]) -> Callable[[Path], None]:
    def tamper(path: Path) -> None:
        old = (path / name).read_bytes()
        (path / name).unlink()
        (path / name).write_bytes(data(old))
    return tamper


def _meta(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def tamper(path: Path) -> None:
        meta = json.loads((path / "meta.json").read_text())
        change(meta)
        (path / "meta.json").write_text(json.dumps(meta))
    return tamper


class Planted:
    def __reduce__(self) -> tuple:
        return (os.system, ("touch /tmp/h1-PWNED",))


AT_LOAD = {  # damage from_disk must refuse (E009 naming the file)
    "missing strings.bin": (lambda p: (p / "strings.bin").unlink(), r"missing strings\.bin"),
    "missing an array": (lambda p: (p / "type_ids.npy").unlink(), r"missing type_ids\.npy"),
    "truncated array": (_replace("relation_objects.npy", lambda b: b[: len(b) - 3]), r"relation_objects\.npy"),
    "pickle as array": (_replace("alias_priors.npy", lambda b: pickle.dumps(Planted())), r"unreadable"),
    "object array": (_rewrite_npy("alias_priors", lambda a: np.array([{"x": 1}] * a.size, dtype=object)),
                     r"alias_priors\.npy"),
    "wrong dtype": (_rewrite_npy("type_ids", lambda a: a.astype(np.int64)), r"E110.*type_ids\.npy"),
    "short index array": (_rewrite_npy("relation_indptr", lambda a: a[:3]), r"relation_indptr"),
    "offsets do not span the blob": (_replace("strings.bin", lambda b: b + b"extra"), r"strings\.offsets\.npy"),
    "meta without table rows": (_meta(lambda m: m.pop("tables")), r"'tables'"),
    "fewer labels than entities": (_meta(lambda m: m["tables"].__setitem__("labels", [0, 1])), r"'labels'"),
}


@pytest.mark.parametrize("case", sorted(AT_LOAD))
def test_damage_found_at_load(case: str, v2_dir: Path) -> None:
    tamper, match = AT_LOAD[case]
    tamper(v2_dir)
    with pytest.raises(KBFormatError, match=r"SSE-E0|SSE-E1") as err:
        KnowledgeBase.from_disk(v2_dir)
    assert str(v2_dir) in str(err.value)
    assert __import__("re").search(match, str(err.value)), str(err.value)
    assert not Path("/tmp/h1-PWNED").exists()


ON_FIRST_USE = {  # damage only a full scan finds: the group's first access raises it
    "candidate id out of range": (_rewrite_npy("alias_entities", lambda a: a + 1000), "aliases",
                                  r"SSE-E009.*alias_entities\.npy.*ids outside"),
    "prior above 1": (_rewrite_npy("alias_priors", lambda a: a * 3), "aliases",
                      r"SSE-E110.*alias_priors\.npy.*alias_priors"),
    "index array falls": (_rewrite_npy("type_indptr", lambda a: np.concatenate([a[:1], a[2:3], a[1:2], a[3:]])),
                          "types", r"SSE-E009.*type_indptr"),
    "negative feature": (_rewrite_npy("graph_features", lambda a: a - 5), "features", r"SSE-E110.*graph_features"),
    "bad UTF-8": (_replace("strings.bin", lambda b: b"\xff" + b[1:]), "strings", r"SSE-E009.*strings\.bin.*UTF-8"),
}


@pytest.mark.parametrize("case", sorted(ON_FIRST_USE))
def test_damage_found_on_first_use(case: str, v2_dir: Path) -> None:
    tamper, group, match = ON_FIRST_USE[case]
    tamper(v2_dir)
    kb = KnowledgeBase.from_disk(v2_dir)  # shapes fit: the load itself is fine
    use = {"aliases": lambda: kb.alias_candidates(0), "types": lambda: kb.types_of(0),
           "features": lambda: kb.graph_features(0), "strings": lambda: kb.entities[0]}[group]
    with pytest.raises(KBFormatError, match=match) as err:
        use()
    assert str(v2_dir) in str(err.value)
    with pytest.raises(KBFormatError):
        use()  # not marked checked after a failure
    with pytest.raises(KBFormatError):
        KnowledgeBase.from_disk(v2_dir).check_all()


# --- random damage: a coded error or answers, nothing else ------------------------------------


@pytest.fixture(scope="module")
def clean_v2(compiled: KnowledgeBase, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clean") / "kb"
    compiled.to_disk(path)
    return path


def _damage_and_use(clean: Path, root: Path, name: str, position: int, value: int, cut: bool) -> None:
    target = root / "damaged"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(clean, target)
    data = bytearray((target / name).read_bytes())
    at = position % len(data)
    if cut:
        del data[at:]
    else:
        data[at] ^= value
    (target / name).unlink()
    (target / name).write_bytes(bytes(data))
    try:
        kb = KnowledgeBase.from_disk(target)
        for alias in kb.aliases:  # whatever loads answers every lookup, or names the damage
            for candidate in kb.lookup(alias):
                kb.entity(candidate["iri"])
        kb.check_all()
    except KBFormatError as err:
        assert str(target) in str(err)


@settings(max_examples=60, derandomize=True, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(set(storage.KB_FILES_V2) - {"meta.json"})), position=st.integers(0, 10**6),
       value=st.integers(1, 255), cut=st.booleans())
def test_damaged_format_2_bytes(clean_v2: Path, tmp_path: Path, name: str, position: int, value: int,
                                cut: bool) -> None:
    _damage_and_use(clean_v2, tmp_path, name, position, value, cut)
