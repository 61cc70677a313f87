"""KB directories and pipeline folders that were damaged or tampered with: a missing
file, a truncated one, another format version, a pickle planted where data belongs.
Loading gives a coded error and never runs code: weights load only through safetensors,
arrays through numpy without pickle, tables through msgpack. An audit hook watches for
any unpickling and a planted payload's marker file must never appear."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import msgpack
import numpy as np
import pytest
import spacy
import torch
from hypothesis import given
from hypothesis import strategies as st

from spacy_sparse_expert.kb.compile import compile_kb
from spacy_sparse_expert import KnowledgeBase
from spacy_sparse_expert.errors import KBFormatError
from spacy_sparse_expert.kb.loaders import load_kb_v1
from spacy_sparse_expert.rules.loaders import load_rules_v1

from ..pipeline.conftest import kb_path, make_examples, make_nlp, rules_path
from .conftest import FAST, SLOW, assert_clean_failure, error_code, run_cli

PACKAGE = Path(__file__).parent.parent.parent / "spacy_sparse_expert"
FIXTURES = Path(__file__).parent.parent / "fixtures"
VOCAB = spacy.blank("en").vocab


class Payload:
    """What an attacker plants: unpickling it would create the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


@pytest.fixture()
def unpickled() -> Iterator[list[tuple]]:
    """Every global an unpickler resolves while the test runs (audit event)."""
    events: list[tuple] = []
    state = {"active": True}

    def hook(event: str, args: tuple) -> None:
        if state["active"] and event == "pickle.find_class":
            events.append(args)

    sys.addaudithook(hook)
    yield events
    state["active"] = False


def test_the_package_never_unpickles() -> None:
    """No pickle import, no torch.load without weights_only=True, no allow_pickle=True."""
    for path in PACKAGE.rglob("*.py"):
        source = path.read_text(encoding="utf8")
        assert "import pickle" not in source and "from pickle" not in source, path
        assert "allow_pickle=True" not in source, path
        for call in source.split("torch.load(")[1:]:
            assert "weights_only=True" in call.split(")")[0], path
        for call in source.split("np.load(")[1:]:
            assert "allow_pickle=False" in call.split(")")[0], path


# --- KB directories ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def kb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kb") / "kb"
    # format 1, checked whole at load; format 2 damage: tests/kb/test_mmap.py
    compile_kb([FIXTURES / "kb_small.ttl"]).to_disk(path, format_version=1)
    return path


def _zip_bomb(path: Path) -> None:
    """arrays.npz whose first member inflates to 80 MiB of zeros (about 80 KB stored)."""
    header = b"\x93NUMPY\x01\x00" + b"{'descr': '<i8', 'fortran_order': False, 'shape': (10485760,), }".ljust(
        118) + b"\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive, archive.open("alias_indptr.npy", "w") as fh:
        fh.write(header)
        for _ in range(80):
            fh.write(bytes(1 << 20))


def _set_array(name: str, change: Callable[[np.ndarray], np.ndarray]) -> Callable[[Path], None]:
    def tamper(path: Path) -> None:
        with np.load(path / "arrays.npz", allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
        arrays[name] = change(arrays[name])
        np.savez(path / "arrays.npz", **arrays)
    return tamper


def _set_table(name: str, value: object) -> Callable[[Path], None]:
    def tamper(path: Path) -> None:
        tables = msgpack.unpackb((path / "tables.msgpack").read_bytes())
        tables[name] = value
        (path / "tables.msgpack").write_bytes(msgpack.packb(tables))
    return tamper


def _truncate(name: str, keep: float) -> Callable[[Path], None]:
    def tamper(path: Path) -> None:
        data = (path / name).read_bytes()
        (path / name).write_bytes(data[:int(len(data) * keep)])
    return tamper


KB_TAMPERING: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing meta.json": (lambda p: (p / "meta.json").unlink(), "E009"),
    "missing tables.msgpack": (lambda p: (p / "tables.msgpack").unlink(), "E009"),
    "missing arrays.npz": (lambda p: (p / "arrays.npz").unlink(), "E009"),
    "empty meta.json": (_truncate("meta.json", 0), "E009"),
    "truncated tables.msgpack": (_truncate("tables.msgpack", 0.5), "E009"),
    "truncated arrays.npz": (_truncate("arrays.npz", 0.5), "E009"),
    "empty arrays.npz": (_truncate("arrays.npz", 0), "E009"),
    "format version 3": (lambda p: (p / "meta.json").write_text(json.dumps({"format_version": 3})), "E010"),
    "meta without version": (lambda p: (p / "meta.json").write_text("{}"), "E010"),
    "meta is a list": (lambda p: (p / "meta.json").write_text("[1, 2]"), "E010"),
    "pickle as arrays.npz": (lambda p: (p / "arrays.npz").write_bytes(pickle.dumps(Payload(p.parent / "PWNED"))),
                             "E009"),
    "pickle as tables.msgpack": (lambda p: (p / "tables.msgpack").write_bytes(
        pickle.dumps(Payload(p.parent / "PWNED"))), "E009"),
    "pickle as meta.json": (lambda p: (p / "meta.json").write_bytes(pickle.dumps(Payload(p.parent / "PWNED"))),
                            "E009"),
    "object array in arrays.npz": (_set_array("alias_priors", lambda a: np.array([Payload(Path("/PWNED"))] * a.size,
                                                                                  dtype=object)), "E009"),
    "zip bomb as arrays.npz": (lambda p: _zip_bomb(p / "arrays.npz"), "E009"),
    "arrays.npz -> /dev/zero": (lambda p: ((p / "arrays.npz").unlink(), (p / "arrays.npz").symlink_to("/dev/zero")),
                                "E009"),
    "candidate id out of range": (_set_array("alias_entities", lambda a: a + 1000), "E009"),
    "negative type id": (_set_array("type_ids", lambda a: a - 1000), "E009"),
    "short index array": (_set_array("relation_indptr", lambda a: a[:3]), "E009"),
    "features of wrong shape": (_set_array("graph_features", lambda a: a.ravel()), "E009"),
    "labels not strings": (_set_table("labels", list(range(10))), "E009"),
    "fewer labels than entities": (_set_table("labels", ["x"]), "E009"),
    "tables not a map": (lambda p: (p / "tables.msgpack").write_bytes(msgpack.packb([1, 2])), "E009"),
}


@pytest.mark.parametrize("case", sorted(KB_TAMPERING))
def test_tampered_kb_directory(case: str, kb_dir: Path, tmp_path: Path, unpickled: list[tuple]) -> None:
    tamper, code = KB_TAMPERING[case]
    target = tmp_path / "kb"
    shutil.copytree(kb_dir, target)
    tamper(target)
    with pytest.raises(KBFormatError) as err:
        KnowledgeBase.from_disk(target)
    assert error_code(str(err.value)) == code and str(target) in str(err.value)
    with pytest.raises(KBFormatError):
        load_kb_v1(target)(VOCAB)  # the pipeline's loader
    assert_clean_failure(run_cli("kb", "info", target), code, str(target))
    assert unpickled == [] and not (tmp_path / "PWNED").exists()


def check_kb_damage(kb_dir: Path, tmp_path: Path, name: str, position: int, value: int, cut: bool) -> None:
    target = tmp_path / "damaged"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(kb_dir, target)
    data = bytearray((target / name).read_bytes())
    at = position % len(data)
    if cut:
        del data[at:]
    else:
        data[at] ^= value
    (target / name).write_bytes(bytes(data))
    try:
        kb = KnowledgeBase.from_disk(target)
    except KBFormatError as err:
        assert str(target) in str(err)
        return
    for alias in kb.aliases:  # whatever loads must answer every lookup
        for candidate in kb.lookup(alias):
            kb.entity(candidate["iri"])


damage = dict(name=st.sampled_from(["meta.json", "tables.msgpack", "arrays.npz"]), position=st.integers(0, 10**6),
              value=st.integers(1, 255), cut=st.booleans())


@FAST
@given(**damage)
def test_damaged_kb_bytes(kb_dir: Path, tmp_path: Path, name: str, position: int, value: int, cut: bool) -> None:
    check_kb_damage(kb_dir, tmp_path, name, position, value, cut)


@pytest.mark.slow
@SLOW
@given(**damage)
def test_damaged_kb_bytes_fuzz(kb_dir: Path, tmp_path: Path, name: str, position: int, value: int,
                               cut: bool) -> None:
    check_kb_damage(kb_dir, tmp_path, name, position, value, cut)


@FAST
@given(data=st.binary(max_size=300))
def test_kb_from_random_bytes(data: bytes) -> None:
    with pytest.raises(KBFormatError):
        KnowledgeBase.from_bytes(data)


# --- pipeline folders --------------------------------------------------------------------


@pytest.fixture(scope="module")
def pipeline_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained pipeline with a KB and rules, saved as nlp.to_disk writes it."""
    root = tmp_path_factory.mktemp("pipeline")
    compile_kb([kb_path()]).to_disk(root / "kb_source")
    nlp = make_nlp()
    nlp.get_pipe("textcat").initialize(lambda: make_examples(nlp), nlp=nlp, kb_loader=load_kb_v1(root / "kb_source"),
                                       rules_loader=load_rules_v1(rules_path()))
    nlp.to_disk(root / "nlp")
    return root / "nlp"


def _write(name: str, data: Callable[[Path], bytes]) -> Callable[[Path], None]:
    def tamper(folder: Path) -> None:
        (folder / name).write_bytes(data(folder))
    return tamper


def _torch_save(folder: Path) -> bytes:
    torch.save({"weight": torch.zeros(2), "payload": Payload(folder / "PWNED")}, folder / "model")
    return (folder / "model").read_bytes()


def _cfg(**changes: object) -> Callable[[Path], None]:
    def tamper(folder: Path) -> None:
        cfg = json.loads((folder / "cfg").read_text())
        cfg.update(changes)
        (folder / "cfg").write_text(json.dumps(cfg))
    return tamper


PIPELINE_TAMPERING: dict[str, tuple[Callable[[Path], None], str]] = {
    "missing model": (lambda f: (f / "model").unlink(), "E063"),
    "missing cfg": (lambda f: (f / "cfg").unlink(), "E063"),
    "model is a directory": (lambda f: ((f / "model").unlink(), (f / "model").mkdir()), "E063"),
    "missing kb": (lambda f: shutil.rmtree(f / "kb"), "E063"),
    "missing rules": (lambda f: (f / "rules").unlink(), "E063"),
    "missing kb/strings.bin": (lambda f: (f / "kb" / "strings.bin").unlink(), "E009"),
    "kb format version 99": (lambda f: (f / "kb" / "meta.json").write_text('{"format_version": 99}'), "E010"),
    "truncated model": (lambda f: (f / "model").write_bytes((f / "model").read_bytes()[:4096]), "E032"),
    "model cut at the end": (lambda f: (f / "model").write_bytes((f / "model").read_bytes()[:-8]), "E032"),
    "pickle as model": (_write("model", lambda f: pickle.dumps(Payload(f / "PWNED"))), "E032"),
    "torch.save as model": (_write("model", _torch_save), "E032"),
    "pickle as cfg": (_write("cfg", lambda f: pickle.dumps(Payload(f / "PWNED"))), "E063"),
    "pickle as rules": (_write("rules", lambda f: pickle.dumps(Payload(f / "PWNED"))), "E020"),
    "pickle as kb/alias_priors.npy": (_write("kb/alias_priors.npy", lambda f: pickle.dumps(Payload(f / "PWNED"))),
                                      "E009"),
    "cfg labels a string": (_cfg(labels="abc"), "E063"),
    "cfg labels of another model": (_cfg(labels=["a", "b", "c", "d", "e"]), "E119"),
    "cfg sizes not integers": (_cfg(n_knowledge_ids="18"), "E063"),
    "cfg not JSON": (_write("cfg", lambda f: b"{"), "E063"),
}


@pytest.fixture(scope="module")
def component() -> object:
    """One component to load the folders into (from_disk replaces all its state)."""
    return make_nlp().get_pipe("textcat")


@pytest.mark.parametrize("case", sorted(PIPELINE_TAMPERING))
def test_tampered_pipeline_folder(case: str, pipeline_dir: Path, tmp_path: Path, unpickled: list[tuple],
                                  component: object) -> None:
    tamper, code = PIPELINE_TAMPERING[case]
    target = tmp_path / "nlp"
    shutil.copytree(pipeline_dir, target)
    tamper(target / "textcat")
    unpickled.clear()  # torch.save above pickled the payload (writing, not loading)
    with pytest.raises(ValueError) as err:
        if case in ("missing model", "pickle as model", "missing kb"):
            spacy.load(target)  # the whole way a user loads a pipeline
        else:
            component.from_disk(target / "textcat")  # type: ignore[attr-defined]
    assert error_code(str(err.value)) == code, err.value
    assert unpickled == [] and not (target / "textcat" / "PWNED").exists()


def test_untampered_pipeline_loads(pipeline_dir: Path) -> None:
    assert set(spacy.load(pipeline_dir)("Chelsea beat Arsenal.").cats) == {"business", "politics", "sport"}


class Saved:
    """A saved component: its bytes and a component to load them into (reused, since
    from_bytes replaces all its state). A short repr keeps hypothesis reports readable."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.component = make_nlp().get_pipe("textcat")

    def __repr__(self) -> str:
        return f"<{len(self.data)} bytes of a saved component>"


@pytest.fixture(scope="module")
def saved(pipeline_dir: Path) -> Saved:
    return Saved(spacy.load(pipeline_dir).get_pipe("textcat").to_bytes())


def check_component_bytes(saved: Saved, position: int, value: int, cut: bool) -> None:
    damaged = bytearray(saved.data)
    at = position % len(damaged)
    if cut:
        del damaged[at:]
    else:
        damaged[at] ^= value
    try:
        saved.component.from_bytes(bytes(damaged))
    except ValueError as err:  # KBFormatError and RuleFileError are ValueErrors too
        assert error_code(str(err)).startswith("E0")


@FAST
@given(position=st.integers(0, 10**7), value=st.integers(1, 255), cut=st.booleans())
def test_damaged_component_bytes(saved: Saved, position: int, value: int, cut: bool) -> None:
    check_component_bytes(saved, position, value, cut)


@pytest.mark.slow
@SLOW
@given(position=st.integers(0, 10**7), value=st.integers(1, 255), cut=st.booleans())
def test_damaged_component_bytes_fuzz(saved: Saved, position: int, value: int, cut: bool) -> None:
    check_component_bytes(saved, position, value, cut)


def test_payload_really_runs_when_unpickled(tmp_path: Path) -> None:
    """The planted payload is live: the tests above would see its marker."""
    pickle.loads(pickle.dumps(Payload(tmp_path / "PWNED")))  # noqa: S301 - the point of the test
    assert (tmp_path / "PWNED").exists()
    os.unlink(tmp_path / "PWNED")
