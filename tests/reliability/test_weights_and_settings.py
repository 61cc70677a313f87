"""Model settings are checked before anything is built, and saved weights before any
tensor is copied in: every bad value gets one coded error (SSE-E032, E115-E119),
quickly and within a memory limit, and nothing on disk changes."""
from __future__ import annotations

import hashlib
import json
import math
import os
import resource
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, Tuple

import pytest
import spacy
import srsly
import torch
from hypothesis import given
from hypothesis import strategies as st
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from spacy.util import registry

from spacy_sparse_expert.ml.settings import MAX_PARAMETERS_ENV, ModelSettingError
from spacy_sparse_expert.ml.weights import WeightsFileError

from ..pipeline.conftest import make_examples, make_nlp, tiny_model
from .conftest import FAST, error_code

ROOT = Path(__file__).parent.parent.parent
HASH_ENCODER = registry.get("architectures", "spacy-sparse-expert.HashEncoder.v1")
MOE_TEXTCAT = registry.get("architectures", "spacy-sparse-expert.MoETextCat.v1")
TINY_ENCODER = {k: v for k, v in tiny_model()["encoder"].items() if not k.startswith("@")}
TINY_MOE = {k: v for k, v in tiny_model().items() if not k.startswith("@") and k != "encoder"}
# a bad setting must be refused long before anything of its size could be built
QUICK_S = 2.0
# a refused load, including naming the settings behind a shape mismatch (~20 builds on torch's meta device)
LOAD_S = 5.0

# The documented ranges (docs/reliability.md). ("int", lo, hi) | ("float", lo, hi, lo_open, hi_open, none_ok)
# | ("bool",) | ("choice", options)
HASH_SETTINGS: Dict[str, tuple] = {
    "width": ("int", 1, 65536), "n_hashes": ("int", 1, 4), "window_size": ("int", 0, 32), "depth": ("int", 0, 32),
    "d_hidden": ("int", 1, 262144), "dropout": ("float", 0.0, 1.0, False, True, False),
}
MOE_SETTINGS: Dict[str, tuple] = {
    "n_experts": ("int", 1, 4096), "k": ("int", 1, 4),  # k <= n_experts = 4 of the tiny model
    "d_ff": ("int", 1, 262144), "n_moe_layers": ("int", 0, 64), "d_knowledge": ("int", 1, 4096),
    "bow_rows": ("int", 0, 1 << 24), "ngram_size": ("int", 1, 8),
    "capacity_factor": ("float", 0.0, 64.0, True, False, True), "bow_scale": ("float", 0.0, 1e4, True, False, False),
    "path_dropout": ("float", 0.0, 1.0, False, True, False), "dropout": ("float", 0.0, 1.0, False, True, False),
    "exclusive_classes": ("bool",), "knowledge_bow": ("bool",), "pooling": ("choice", ("attention", "mean_max")),
}
_NOT_NUMBERS = st.one_of(st.text(max_size=5), st.none(), st.lists(st.integers(0, 3), max_size=2),
                         st.dictionaries(st.text(max_size=2), st.integers(), max_size=1))


def bad_values(spec: tuple) -> st.SearchStrategy[Any]:
    """Values outside a setting's type or range: negative, zero, huge, float for int,
    bool, nan, inf, strings, null."""
    kind = spec[0]
    if kind == "int":
        _, lo, hi = spec
        return st.one_of(st.integers(max_value=lo - 1), st.integers(min_value=hi + 1), st.booleans(),
                         st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([float(lo), 1e9, -0.0]),
                         _NOT_NUMBERS)
    if kind == "float":
        _, lo, hi, lo_open, hi_open, none_ok = spec
        # (-0.0 == 0.0: hypothesis may offer it as "below 0.0")
        outside = st.one_of(st.floats(max_value=lo, exclude_max=not lo_open).filter(lambda v: lo_open or v != lo),
                            st.floats(min_value=hi, exclude_min=not hi_open).filter(lambda v: not hi_open or v >= hi))
        not_numbers = _NOT_NUMBERS.filter(lambda v: v is not None) if none_ok else _NOT_NUMBERS
        return st.one_of(outside, st.sampled_from([math.nan, math.inf, -math.inf]), st.booleans(), not_numbers)
    if kind == "bool":
        return st.one_of(st.integers(), st.floats(allow_nan=True), _NOT_NUMBERS)
    return st.one_of(st.text(max_size=12).filter(lambda v: v not in spec[1]), st.integers(), st.none())


def _build(encoder_changes: Dict[str, Any], moe_changes: Dict[str, Any]) -> Any:
    encoder = HASH_ENCODER(**{**TINY_ENCODER, **encoder_changes})
    return MOE_TEXTCAT(encoder=encoder, **{**TINY_MOE, **moe_changes})


@pytest.fixture()
def memory_guard() -> Iterator[None]:
    """Lowers this process's address-space limit for the test: a regression that
    allocates what a huge setting asks for fails with MemoryError instead of taking
    the machine. (The soft limit can be raised back afterwards.)"""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    resource.setrlimit(resource.RLIMIT_AS, (min(vm + (2 << 30), hard if hard > 0 else vm + (2 << 30)), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# --- settings: every setting, every kind of bad value --------------------------------

@FAST
@given(data=st.data())
def test_every_bad_setting_gets_e115(data: st.DataObject, memory_guard: None) -> None:
    which = data.draw(st.sampled_from(sorted(HASH_SETTINGS) + [f"moe.{k}" for k in sorted(MOE_SETTINGS)]))
    key = which.removeprefix("moe.")
    spec = MOE_SETTINGS[key] if which.startswith("moe.") else HASH_SETTINGS[key]
    value = data.draw(bad_values(spec), label=key)
    changes = ({}, {key: value}) if which.startswith("moe.") else ({key: value}, {})
    start = time.perf_counter()
    with pytest.raises(ModelSettingError) as err:
        _build(*changes)
    assert time.perf_counter() - start < QUICK_S
    assert error_code(str(err.value)) == "E115", err.value
    assert f"{key}=" in str(err.value) and "Allowed:" in str(err.value)


@pytest.mark.parametrize("which", sorted(HASH_SETTINGS) + [f"moe.{k}" for k in sorted(MOE_SETTINGS)])
def test_boundary_values_are_accepted(which: str) -> None:
    """The ends of each documented range are valid settings (the budget may still
    refuse a huge model as a whole, with E116, never E115)."""
    key = which.removeprefix("moe.")
    spec = MOE_SETTINGS[key] if which.startswith("moe.") else HASH_SETTINGS[key]
    if spec[0] == "int":
        values = [spec[1], spec[2]]
    elif spec[0] == "float":
        _, lo, hi, lo_open, hi_open, none_ok = spec
        values = [lo if not lo_open else lo + 1e-6, hi if not hi_open else hi - 1e-6] + ([None] if none_ok else [])
    else:
        values = [True, False] if spec[0] == "bool" else list(spec[1])
    for value in values:
        moe = {key: value, "k": 1} if key == "n_experts" else {key: value}
        changes = ({}, moe) if which.startswith("moe.") else ({key: value}, {})
        try:
            _build(*changes)
        except ModelSettingError as err:
            assert error_code(str(err)) == "E116", err


@FAST
@given(attrs=st.lists(st.sampled_from(["NORM", "prefix", "SHAPE", "LOWER"]), min_size=1, max_size=5),
       rows=st.lists(st.integers(1, 50), min_size=0, max_size=6))
def test_attrs_and_rows_must_pair_up(attrs: list, rows: list) -> None:
    if len(attrs) == len(rows) and rows:
        assert HASH_ENCODER(**{**TINY_ENCODER, "attrs": attrs, "rows": rows}).width == TINY_ENCODER["width"]
        return
    with pytest.raises(ModelSettingError, match=r"SSE-E11[56].*(rows|attrs)"):
        HASH_ENCODER(**{**TINY_ENCODER, "attrs": attrs, "rows": rows})


@pytest.mark.parametrize("attrs,rows", [("NORM", [10]), (["NORM", "NOT_AN_ATTR"], [10, 10]), ([], []),
                                        (["NORM"], "10"), (["NORM"], [10.0]), (["NORM"], [-1]), (["NORM"], [True])])
def test_bad_attrs_or_rows(attrs: Any, rows: Any) -> None:
    with pytest.raises(ModelSettingError, match=r"SSE-E115.*(attrs|rows)"):
        HASH_ENCODER(**{**TINY_ENCODER, "attrs": attrs, "rows": rows})


def test_transformer_encoder_settings_checked_before_loading() -> None:
    build = registry.get("architectures", "spacy-sparse-expert.TransformerEncoder.v1")
    for changes in ({"width": 0}, {"stride": 1e6}, {"cache_mb": -1}, {"max_length": -1}, {"frozen": "yes"}, {"path": 3}):
        with pytest.raises(ModelSettingError, match=r"SSE-E115"):
            build(**{"path": "/nonexistent/encoder", **changes})


# --- the parameter budget --------------------------------------------------------------

def _n_parameters(nlp: Any) -> int:
    from spacy_sparse_expert.ml.architectures import torch_module

    return sum(t.numel() for t in torch_module(nlp.get_pipe("textcat").model).state_dict().values())


def test_parameter_budget_is_exact_and_can_be_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    nlp = make_nlp()
    nlp.initialize(lambda: make_examples(nlp))
    size = _n_parameters(nlp)
    monkeypatch.setenv(MAX_PARAMETERS_ENV, str(size))
    nlp = make_nlp()
    nlp.initialize(lambda: make_examples(nlp))  # exactly at the limit: fine
    monkeypatch.setenv(MAX_PARAMETERS_ENV, str(size - 1))
    with pytest.raises(ModelSettingError, match=rf"SSE-E116.*{size:,} parameters.*{MAX_PARAMETERS_ENV}"):
        nlp = make_nlp()  # the 1-label lower bound may already be refused here ...
        nlp.initialize(lambda: make_examples(nlp))  # ... the 3-label model is, here


@pytest.mark.parametrize("raw", ["0", "-5", "lots", "1e9"])
def test_bad_budget_variable(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv(MAX_PARAMETERS_ENV, raw)
    with pytest.raises(ModelSettingError, match=rf"SSE-E115.*{MAX_PARAMETERS_ENV}"):
        make_nlp()


# --- huge settings in a subprocess under RLIMIT_AS -------------------------------------

_HUGE_SCRIPT = r"""
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (__LIMIT__, __LIMIT__))
from spacy.util import registry
import spacy_sparse_expert  # noqa: F401
enc_b = registry.get("architectures", "spacy-sparse-expert.HashEncoder.v1")
moe_b = registry.get("architectures", "spacy-sparse-expert.MoETextCat.v1")
enc0, moe0 = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for label, enc, moe in json.loads(sys.stdin.read()):
    start = time.perf_counter()
    try:
        moe_b(encoder=enc_b(**{**enc0, **enc}), **{**moe0, **moe})
        out = "built"
    except Exception as err:  # noqa: BLE001 - report whatever came out
        out = type(err).__name__ + ": " + str(err)[:300]
    print(json.dumps([label, out, time.perf_counter() - start,
                      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]), flush=True)
"""
HUGE_CASES = [
    ("width=1e9", {"width": 1e9}, {}), ("width=10**12", {"width": 10**12}, {}), ("width=2**63", {"width": 2**63}, {}),
    ("width=-(2**31)", {"width": -(2**31)}, {}), ("d_hidden=10**10", {"d_hidden": 10**10}, {}),
    ("rows=[10**12]*4", {"rows": [10**12] * 4}, {}), ("depth=10**6", {"depth": 10**6}, {}),
    ("window_size=10**7", {"window_size": 10**7}, {}), ("d_ff=0", {}, {"d_ff": 0}),
    ("d_ff=-1", {}, {"d_ff": -1}), ("n_experts=10**9", {}, {"n_experts": 10**9}),
    ("n_moe_layers=10**6", {}, {"n_moe_layers": 10**6}), ("bow_rows=10**12", {}, {"bow_rows": 10**12}),
    ("ngram_size=10**7", {}, {"ngram_size": 10**7}), ("d_knowledge=2**40", {}, {"d_knowledge": 2**40}),
    ("capacity_factor=1e308", {}, {"capacity_factor": 1e308}),
    # each within its range, the model over the 2**28-parameter budget (E116)
    ("width=65536,d_ff=262144,n_experts=4096", {"width": 65536}, {"d_ff": 262144, "n_experts": 4096}),
    ("rows=[2**24]*16 attrs", {"attrs": ["NORM"] * 16, "rows": [1 << 24] * 16, "width": 65536}, {}),
]


def _run_limited(script: str, args: list, stdin: str, limit: int) -> list:
    proc = subprocess.run([sys.executable, "-c", script.replace("__LIMIT__", str(limit)), *args], input=stdin,
                          capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return [json.loads(line) for line in proc.stdout.splitlines()]


def test_huge_settings_refused_within_memory_limit() -> None:
    rows = _run_limited(_HUGE_SCRIPT, [json.dumps(TINY_ENCODER), json.dumps(TINY_MOE)],
                        json.dumps(HUGE_CASES), 3 << 30)
    assert [r[0] for r in rows] == [c[0] for c in HUGE_CASES]
    for label, out, seconds, _ in rows:
        assert out.startswith("ModelSettingError: [SSE-E11"), (label, out)
        code = out.split("[SSE-")[1][:4]
        assert code == ("E116" if "," in label or "attrs" in label else "E115"), (label, out)
        assert seconds < QUICK_S, (label, seconds)
    for label, out, seconds, maxrss in rows:
        print(f"{label}\t{out[19:28]}\t{seconds * 1000:.1f} ms\t{maxrss / 1024:.0f} MiB")


# --- saved pipelines: settings vs weights, tampered weights -----------------------------

@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny pipeline (no KB, so it loads in tens of milliseconds)."""
    nlp = make_nlp()
    nlp.initialize(lambda: make_examples(nlp))
    path = tmp_path_factory.mktemp("weights") / "nlp"
    nlp.to_disk(path)
    return path


@pytest.fixture(scope="module")
def component() -> Any:
    return make_nlp().get_pipe("textcat")


def _digest(folder: Path) -> Dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("old,new,setting", [
    ("width = 16", "width = 32", "encoder width=32"),
    ("width = 16", "width = 8", "encoder width=8"),
    ("depth = 1", "depth = 2", "encoder depth=2"),
    ("d_hidden = 16", "d_hidden = 24", "encoder d_hidden=24"),
    ("d_ff = 16", "d_ff = 32", "d_ff=32"),
    ("n_experts = 4", "n_experts = 6", "n_experts=6"),
    ("n_moe_layers = 1", "n_moe_layers = 2", "n_moe_layers=2"),
    ("d_knowledge = 8", "d_knowledge = 4", "d_knowledge=4"),
    ("bow_rows = 2048", "bow_rows = 4096", "bow_rows=4096"),
    ("pooling = \"attention\"", "pooling = \"mean_max\"", "pooling=\"mean_max\""),
])
def test_config_that_disagrees_with_weights_gets_e119(saved: Path, tmp_path: Path, old: str, new: str,
                                                      setting: str) -> None:
    target = tmp_path / "nlp"
    shutil.copytree(saved, target)
    config = (target / "config.cfg").read_text()
    assert old in config
    (target / "config.cfg").write_text(config.replace(old, new, 1))
    before = _digest(target)
    with pytest.raises(WeightsFileError) as err:
        spacy.load(target)
    assert error_code(str(err.value)) == "E119", err.value
    assert setting in str(err.value) and str(target / "textcat" / "model") in str(err.value)
    assert _digest(target) == before


@pytest.mark.parametrize("line,value", [("width = 16", "width = 1e9"), ("d_ff = 16", "d_ff = 0"),
                                        ("n_experts = 4", "n_experts = -4"),
                                        ("ngram_size = 2", "ngram_size = 10000000"),
                                        ("dropout = 0.0", "dropout = 1.5"), ("bow_rows = 2048", "bow_rows = true")])
def test_bad_config_value_of_saved_pipeline(saved: Path, tmp_path: Path, line: str, value: str) -> None:
    """(NaN and Infinity in a config.cfg are refused by spaCy itself, before any
    builder runs: its E961, "non-serializable Python object in config".)"""
    target = tmp_path / "nlp"
    shutil.copytree(saved, target)
    config = (target / "config.cfg").read_text()
    (target / "config.cfg").write_text(config.replace(line, value, 1))
    start = time.perf_counter()
    with pytest.raises(ModelSettingError, match=r"SSE-E115") as err:
        spacy.load(target)
    assert time.perf_counter() - start < LOAD_S
    assert value.split(" = ")[0] in str(err.value)


def _tamper(kind: str, name: str) -> Callable[[Dict[str, torch.Tensor]], None]:
    def apply(state: Dict[str, torch.Tensor]) -> None:
        t = state[name]
        if kind in ("nan", "inf", "-inf"):
            t = t.clone()
            t.view(-1)[t.numel() // 2] = float(kind)
        elif kind == "missing":
            del state[name]
            return
        elif kind == "extra":
            state[name + "_extra"] = t.clone()
            return
        elif kind == "wrong shape":
            t = torch.zeros(*t.shape[:-1], t.shape[-1] + 1)
        elif kind == "scalar":
            t = torch.zeros(())
        else:
            t = t.to(getattr(torch, kind))
        state[name] = t
    return apply


TAMPER_CODES = {"nan": {"E117"}, "inf": {"E117"}, "-inf": {"E117"}, "int8": {"E117"}, "bool": {"E117"},
                "float64": {"E117"}, "float16": {"E117"}, "bfloat16": {"E117"}, "missing": {"E118"},
                "extra": {"E118"}, "scalar": {"E117"},
                # a tensor dim that alone follows a setting (encoder rows: embed.weight dim 0) reads as E119
                "wrong shape": {"E117", "E119"}}


@pytest.fixture(scope="module")
def state(saved: Path) -> Dict[str, torch.Tensor]:
    return st_load((saved / "textcat" / "model").read_bytes())


@FAST
@given(data=st.data())
def test_tampered_weights_file(data: st.DataObject, saved: Path, state: Dict[str, torch.Tensor], component: Any,
                               tmp_path_factory: pytest.TempPathFactory) -> None:
    kind = data.draw(st.sampled_from(sorted(TAMPER_CODES)))
    name = data.draw(st.sampled_from(sorted(state)))
    tampered = dict(state)
    _tamper(kind, name)(tampered)
    target = tmp_path_factory.mktemp("tampered") / "textcat"
    shutil.copytree(saved / "textcat", target)
    (target / "model").write_bytes(st_save(tampered))
    before = _digest(target)
    with pytest.raises(WeightsFileError) as err:
        component.from_disk(target)
    assert error_code(str(err.value)) in TAMPER_CODES[kind], (kind, name, err.value)
    assert repr(name) in str(err.value) or repr(name + "_extra") in str(err.value), err.value
    assert str(target / "model") in str(err.value)
    assert _digest(target) == before


@pytest.mark.parametrize("kind", sorted(TAMPER_CODES))
def test_tampered_weights_in_bytes(kind: str, saved: Path, state: Dict[str, torch.Tensor], component: Any) -> None:
    """The same checks for nlp.from_bytes (weights inside the component's msgpack)."""
    nlp = spacy.load(saved)
    msg = srsly.msgpack_loads(nlp.get_pipe("textcat").to_bytes())
    tampered = dict(state)
    _tamper(kind, "output.weight")(tampered)
    msg["model"] = st_save(tampered)
    with pytest.raises(WeightsFileError) as err:
        component.from_bytes(srsly.msgpack_dumps(msg))
    assert error_code(str(err.value)) in TAMPER_CODES[kind] and "output.weight" in str(err.value), err.value


def test_untampered_weights_load(saved: Path, component: Any) -> None:
    component.from_disk(saved / "textcat")
    nlp = spacy.load(saved)
    assert set(nlp("Chelsea beat Arsenal.").cats) == {"business", "politics", "sport"}


def _header_bytes(raw: bytes) -> bytes:
    return struct.pack("<Q", len(raw)) + raw


def _header(entries: Any) -> bytes:
    return _header_bytes(json.dumps(entries).encode())


def _header_cases(good: bytes) -> Dict[str, bytes]:
    (n,) = struct.unpack("<Q", good[:8])
    header = json.loads(good[8 : 8 + n])
    name = "output.weight"

    def edit(**changes: Any) -> bytes:
        entries = json.loads(json.dumps(header))
        entries[name].update(changes)
        return _header(entries) + good[8 + n :]

    return {
        "empty": b"",
        "7 bytes": good[:7],
        "truncated": good[:-1],
        "bytes appended": good + b"\0" * 4,
        "header length past the end": struct.pack("<Q", len(good)) + good[8:],
        "header length 2**63": struct.pack("<Q", 1 << 63) + good[8:],
        "header not JSON": good[:8] + b"[" + good[9:],
        "header a list": _header([]) + good[8 + n :],  # type: ignore[arg-type]
        "duplicate tensor": _header_bytes(good[8 : 8 + n].replace(b"{", b'{"' + name.encode() + b'": {}, ', 1))
                            + good[8 + n :],
        "unknown dtype": edit(dtype="F128"),
        "negative dim": edit(shape=[-3, 32]),
        "float dim": edit(shape=[3.0, 32]),
        "offsets out of the file": edit(data_offsets=[0, 10**12]),
        "offsets reversed": edit(data_offsets=[10, 0]),
        "huge shape claimed": edit(shape=[10**6, 10**6]),
    }


def test_malformed_headers_are_refused_before_allocation(saved: Path, component: Any, tmp_path: Path) -> None:
    good = (saved / "textcat" / "model").read_bytes()
    for case, data in _header_cases(good).items():
        target = tmp_path / case.replace(" ", "_") / "textcat"
        shutil.copytree(saved / "textcat", target)
        (target / "model").write_bytes(data)
        with pytest.raises(WeightsFileError) as err:
            component.from_disk(target)
        assert error_code(str(err.value)) in ("E032", "E117", "E118"), (case, err.value)


_HEADER_SCRIPT = r"""
import json, resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (__LIMIT__, __LIMIT__))
import spacy
import spacy_sparse_expert  # noqa: F401
from tests.pipeline.conftest import make_nlp
component = make_nlp().get_pipe("textcat")
for folder in sys.argv[1:]:
    start = time.perf_counter()
    try:
        component.from_disk(folder)
        out = "loaded"
    except Exception as err:  # noqa: BLE001
        out = type(err).__name__ + ": " + str(err)[:200]
    print(json.dumps([folder, out, time.perf_counter() - start,
                      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss]), flush=True)
"""


def _sparse_weights(path: Path, state: Dict[str, torch.Tensor], name: str, shape: Tuple[int, ...]) -> None:
    """A weights file whose tensor `name` has `shape` (float32), written sparse: the
    header and the other tensors are real bytes, the big tensor is a hole."""
    rest = st_save({k: v for k, v in state.items() if k != name})
    (n,) = struct.unpack("<Q", rest[:8])
    entries = json.loads(rest[8 : 8 + n])
    data = rest[8 + n :]
    size = 4 * math.prod(shape)
    entries[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [len(data), len(data) + size]}
    with path.open("wb") as f:
        f.write(_header(entries) + data)
        f.truncate(f.tell() + size)


def test_huge_shapes_in_a_file_refused_within_memory_limit(saved: Path, state: Dict[str, torch.Tensor],
                                                           tmp_path: Path) -> None:
    """A header claiming 4 TB, and a (sparse) 16 GiB weights file of another model,
    are refused under a 3 GiB address-space limit: only the header is read."""
    good = (saved / "textcat" / "model").read_bytes()
    folders = []
    for case in ("claims_4_TB", "16_GiB_file", "untampered"):
        target = tmp_path / case
        shutil.copytree(saved / "textcat", target)
        if case == "claims_4_TB":
            (target / "model").write_bytes(_header_cases(good)["huge shape claimed"])
        elif case == "16_GiB_file":
            _sparse_weights(target / "model", state, "bow.weight", (1 << 20, 4096))
        folders.append(str(target))
    rows = _run_limited(_HEADER_SCRIPT, folders, "", 3 << 30)
    outs = {Path(r[0]).name: r[1] for r in rows}
    assert outs["untampered"] == "loaded", outs
    assert outs["claims_4_TB"].startswith("WeightsFileError: [SSE-E032]"), outs
    assert outs["16_GiB_file"].startswith("WeightsFileError: [SSE-E117]") and "bow.weight" in outs["16_GiB_file"], outs
    for folder, out, seconds, maxrss in rows:
        assert seconds < LOAD_S, (folder, seconds)
        print(f"{Path(folder).name}\t{out[:40]}\t{seconds * 1000:.1f} ms\t{maxrss / 1024:.0f} MiB")
