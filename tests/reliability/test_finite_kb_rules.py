"""Every number read from a KB or a rule file is checked when it is loaded.

KB: each array of a real small KB (tests/fixtures/kb_small.ttl) is damaged in every way
of a family -- nan/inf/-inf/huge/negative values, wrong dtypes, truncated lengths,
out-of-range ids, broken CSR index arrays, meta.json counts -- and loaded from its
directory and from bytes: each load fails with one coded KBFormatError that names the
KB, the file and the field, and changes nothing on disk. Rules: each numeric field
(weight, a label score, an expert score) gets every bad value of a family, through
JSONL, the rule file loader, RuleSet.from_bytes and `sparse-expert rules check`.
"""
from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import spacy
from hypothesis import given
from hypothesis import strategies as st

from spacy_sparse_expert.kb.compile import compile_kb
from spacy_sparse_expert.errors import KBFormatError, RuleFileError
from spacy_sparse_expert.features.features import KnowledgeFeaturizer
from spacy_sparse_expert.kb.knowledge_base import ARRAY_DTYPES, KnowledgeBase
from spacy_sparse_expert.rules.records import MAX_RULE_SCORE
from spacy_sparse_expert.rules.rules import RuleSet, parse_rules

from .conftest import FAST, assert_clean_failure, error_code, run_cli

FIXTURES = Path(__file__).parent.parent / "fixtures"
FLOAT_ARRAYS = ("alias_priors", "graph_features")
ID_ARRAYS = ("alias_entities", "type_ids", "relation_predicates", "relation_objects")
INDPTR_ARRAYS = ("alias_indptr", "type_indptr", "relation_indptr")
BAD_FLOATS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf, "huge": 1e30, "negative": -1.0}


@pytest.fixture(scope="module")
def kb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("kb") / "kb"
    # format 1, checked whole at load; format 2 defers value checks to first use (tests/kb/test_mmap.py)
    compile_kb([FIXTURES / "kb_small.ttl"]).to_disk(path, format_version=1)
    return path


@pytest.fixture(scope="module")
def clean_arrays(kb_dir: Path) -> dict[str, np.ndarray]:
    with np.load(kb_dir / "arrays.npz", allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _digest(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir())}


def load_damaged(kb_dir: Path, tmp_path: Path, arrays: dict[str, np.ndarray],
                 meta: Callable[[dict], None] | None = None) -> tuple[KBFormatError, KBFormatError]:
    """Write a copy of the KB with these arrays (and meta edited), load it from disk and
    from bytes. RETURNS both errors; fails if either load succeeds or touches the files."""
    target = tmp_path / "kb"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(kb_dir, target)
    np.savez(target / "arrays.npz", **arrays)
    meta_data = json.loads((target / "meta.json").read_text(encoding="utf8"))
    if meta is not None:
        meta(meta_data)
        (target / "meta.json").write_text(json.dumps(meta_data), encoding="utf8")
    before = _digest(target)
    with pytest.raises(KBFormatError) as from_disk:
        KnowledgeBase.from_disk(target)
    assert _digest(target) == before
    assert str(target) in str(from_disk.value)
    blob = msgpack.packb({
        "meta": json.dumps(meta_data),
        "tables": msgpack.unpackb((target / "tables.msgpack").read_bytes(), raw=False),
        "arrays": {name: {"dtype": a.dtype.str, "shape": list(a.shape), "data": np.ascontiguousarray(a).tobytes()}
                   for name, a in arrays.items()},
    }, use_bin_type=True)
    with pytest.raises(KBFormatError) as from_bytes:
        KnowledgeBase.from_bytes(blob)
    assert "<bytes>" in str(from_bytes.value)
    return from_disk.value, from_bytes.value


def _with(arrays: dict[str, np.ndarray], name: str, value: np.ndarray) -> dict[str, np.ndarray]:
    return {**arrays, name: value}


# --- KB: values ------------------------------------------------------------------------


@pytest.mark.parametrize("name", FLOAT_ARRAYS)
@pytest.mark.parametrize("bad", sorted(BAD_FLOATS))
@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_bad_float_in_kb_array(kb_dir: Path, tmp_path: Path, clean_arrays: dict, name: str, bad: str,
                               where: str) -> None:
    array = clean_arrays[name].copy()
    flat = array.reshape(-1)
    flat[{"first": 0, "middle": flat.size // 2, "last": -1}[where]] = BAD_FLOATS[bad]
    disk, data = load_damaged(kb_dir, tmp_path, _with(clean_arrays, name, array))
    for err in (disk, data):
        assert error_code(str(err)) == "E110" and repr(name) in str(err), err
    assert "arrays.npz" in str(disk)


@pytest.mark.parametrize("column", ["in_degree", "out_degree", "degree", "core_number", "pagerank"])
@pytest.mark.parametrize("value", [1.5, 1e6, -2.0])
def test_graph_feature_out_of_range(kb_dir: Path, tmp_path: Path, clean_arrays: dict, column: str,
                                    value: float) -> None:
    if column == "pagerank" and value == 1.5:
        value = 1.01  # PageRank is a probability; 1.5 is also out of range but say so plainly
    names = KnowledgeBase.from_disk(kb_dir).feature_names
    features = clean_arrays["graph_features"].copy()
    features[3, names.index(column)] = value
    disk, data = load_damaged(kb_dir, tmp_path, _with(clean_arrays, "graph_features", features))
    for err in (disk, data):
        assert error_code(str(err)) == "E110" and repr(column) in str(err), err


def test_prior_order_and_sums(kb_dir: Path, tmp_path: Path, clean_arrays: dict) -> None:
    indptr, priors = clean_arrays["alias_indptr"], clean_arrays["alias_priors"]
    multi = next(a for a in range(indptr.size - 1) if indptr[a + 1] - indptr[a] > 1)
    start, end = int(indptr[multi]), int(indptr[multi + 1])
    rising = priors.copy()
    rising[start:end] = rising[start:end][::-1]
    halved = priors * np.float32(0.5)
    for bad, words in ((rising, "highest prior first"), (halved, "sum to")):
        for err in load_damaged(kb_dir, tmp_path, _with(clean_arrays, "alias_priors", bad)):
            assert error_code(str(err)) == "E110" and words in str(err), err


def test_bool_array_with_other_bytes(kb_dir: Path, tmp_path: Path, clean_arrays: dict) -> None:
    raw = clean_arrays["type_direct"].view(np.uint8).copy()
    raw[-1] = 2
    for err in load_damaged(kb_dir, tmp_path, _with(clean_arrays, "type_direct", raw.view(np.bool_))):
        assert error_code(str(err)) == "E110" and "'type_direct'" in str(err)


# --- KB: dtypes ------------------------------------------------------------------------

WRONG_DTYPES = ("int8", "bool", "float64", "float16", "int32", "int64", "uint32", "complex64")


@pytest.mark.parametrize(("name", "dtype"), [(name, dtype) for name in sorted(ARRAY_DTYPES) for dtype in WRONG_DTYPES
                                             if np.dtype(dtype) != np.dtype(ARRAY_DTYPES[name])])
def test_wrong_dtype(kb_dir: Path, tmp_path: Path, clean_arrays: dict, name: str, dtype: str) -> None:
    # the same values in another dtype: only the dtype is wrong
    changed = clean_arrays[name].astype(dtype)
    for err in load_damaged(kb_dir, tmp_path, _with(clean_arrays, name, changed)):
        assert error_code(str(err)) == "E110", err
        assert repr(name) in str(err) and "dtype" in str(err)


def test_float64_of_huge_value_is_refused_not_cast_to_inf(kb_dir: Path, tmp_path: Path,
                                                          clean_arrays: dict) -> None:
    features = clean_arrays["graph_features"].astype(np.float64)
    features[0, 0] = 1e39  # finite in float64, inf once cast to float32
    for err in load_damaged(kb_dir, tmp_path, _with(clean_arrays, "graph_features", features)):
        assert error_code(str(err)) == "E110" and "float64" in str(err)


def test_object_arrays_never_load(kb_dir: Path, tmp_path: Path, clean_arrays: dict) -> None:
    target = tmp_path / "kb"
    shutil.copytree(kb_dir, target)
    np.savez(target / "arrays.npz", **_with(clean_arrays, "alias_priors",
                                             np.array([0.5] * clean_arrays["alias_priors"].size, dtype=object)))
    with pytest.raises(KBFormatError, match="SSE-E009"):
        KnowledgeBase.from_disk(target)
    msg = msgpack.unpackb(KnowledgeBase.from_disk(kb_dir).to_bytes(), raw=False)
    msg["arrays"]["alias_priors"]["dtype"] = "|O"
    with pytest.raises(KBFormatError, match="SSE-E009"):
        KnowledgeBase.from_bytes(msgpack.packb(msg, use_bin_type=True))


def test_other_byte_order_loads_the_same(kb_dir: Path, tmp_path: Path, clean_arrays: dict) -> None:
    swapped = {name: a.astype(a.dtype.newbyteorder(">")) for name, a in clean_arrays.items()}
    target = tmp_path / "kb"
    shutil.copytree(kb_dir, target)
    np.savez(target / "arrays.npz", **swapped)
    kb, reference = KnowledgeBase.from_disk(target), KnowledgeBase.from_disk(kb_dir)
    for alias in reference.aliases:
        assert kb.lookup(alias) == reference.lookup(alias)


# --- KB: lengths, ids, index arrays ----------------------------------------------------


@pytest.mark.parametrize("name", sorted(ARRAY_DTYPES))
def test_truncated_array(kb_dir: Path, tmp_path: Path, clean_arrays: dict, name: str) -> None:
    short = clean_arrays[name][:-1]
    for err in load_damaged(kb_dir, tmp_path, _with(clean_arrays, name, short)):
        assert error_code(str(err)) == "E009", err


@pytest.mark.parametrize("name", ID_ARRAYS)
@pytest.mark.parametrize("value", ["count", -1, 2**31 - 1])
def test_id_out_of_range(kb_dir: Path, tmp_path: Path, clean_arrays: dict, name: str, value: Any) -> None:
    kb = KnowledgeBase.from_disk(kb_dir)
    count = {"alias_entities": kb.n_entities, "type_ids": kb.n_types, "relation_predicates": kb.n_predicates,
             "relation_objects": kb.n_entities}[name]
    ids = clean_arrays[name].copy()
    ids[ids.size // 2] = count if value == "count" else value
    for err in load_damaged(kb_dir, tmp_path, _with(clean_arrays, name, ids)):
        assert error_code(str(err)) == "E009" and repr(name) in str(err), err


@pytest.mark.parametrize("name", INDPTR_ARRAYS)
@pytest.mark.parametrize("damage", ["decreasing", "past the end", "not from 0"])
def test_broken_index_array(kb_dir: Path, tmp_path: Path, clean_arrays: dict, name: str, damage: str) -> None:
    indptr = clean_arrays[name].copy()
    if damage == "decreasing":
        i = int(np.flatnonzero(np.diff(indptr) > 0)[0]) + 1
        indptr[i] = indptr[i - 1] - 1
    elif damage == "past the end":
        indptr[-1] += 1
    else:
        indptr[0] = 1
    for err in load_damaged(kb_dir, tmp_path, _with(clean_arrays, name, indptr)):
        assert error_code(str(err)) == "E009" and repr(name) in str(err), err


@pytest.mark.parametrize("value", ["many", -1, True, 1.5, 10**6, None])
def test_meta_counts(kb_dir: Path, tmp_path: Path, clean_arrays: dict, value: Any) -> None:
    def edit(meta: dict) -> None:
        meta["counts"]["entities"] = value

    for err in load_damaged(kb_dir, tmp_path, clean_arrays, meta=edit):
        assert error_code(str(err)) == "E110" and "counts.entities" in str(err), err
    assert_clean_failure(run_cli("kb", "info", tmp_path / "kb"), "E110", "meta.json", "counts.entities")


def test_cli_names_file_and_field(kb_dir: Path, tmp_path: Path, clean_arrays: dict) -> None:
    features = clean_arrays["graph_features"].copy()
    features[0, 0] = np.inf
    load_damaged(kb_dir, tmp_path, _with(clean_arrays, "graph_features", features))
    assert_clean_failure(run_cli("kb", "info", tmp_path / "kb"), "E110", str(tmp_path / "kb"), "arrays.npz",
                         "'graph_features'", "inf")


@FAST
@given(name=st.sampled_from(FLOAT_ARRAYS), position=st.integers(0, 10**6),
       value=st.floats(allow_nan=True, allow_infinity=True, width=32))
def test_any_float_either_fails_or_loads_finite(kb_dir: Path, clean_arrays: dict, name: str, position: int,
                                                value: float) -> None:
    array = clean_arrays[name].copy()
    array.reshape(-1)[position % array.size] = value
    blob = msgpack.packb({
        "meta": json.dumps({"format_version": 1}),
        "tables": msgpack.unpackb((kb_dir / "tables.msgpack").read_bytes(), raw=False),
        "arrays": {n: {"dtype": a.dtype.str, "shape": list(a.shape), "data": a.tobytes()}
                   for n, a in _with(clean_arrays, name, array).items()},
    }, use_bin_type=True)
    try:
        kb = KnowledgeBase.from_bytes(blob)
    except KBFormatError as err:
        assert error_code(str(err)) == "E110"
        return
    assert np.isfinite(kb.array("alias_priors")).all() and np.isfinite(kb.raw_graph_features).all()
    assert ((kb.feature_matrix >= 0) & (kb.feature_matrix <= 1)).all()


# --- rules -----------------------------------------------------------------------------

# (JSON text, msgpack-able value or None): every one must be refused.
BAD_SCORES = {
    "nan": ("NaN", math.nan), "inf": ("Infinity", math.inf), "-inf": ("-Infinity", -math.inf),
    "1e39": ("1e39", 1e39), "-1e39": ("-1e39", -1e39), "just over": ("10000.001", 10000.001),
    "huge int": (str(10**20), 10**19), "giant int": ("1" + "0" * 400, None),
    "string": ('"1"', "1"), "true": ("true", True), "false": ("false", False), "null": ("null", None),
    "list": ("[1]", [1]), "object": ('{"x": 1}', {"x": 1}),
}
FIELDS = {  # field name in problems -> rule line with the value in place of {v}
    "weight": '{{"id": "r", "phrase": "goal", "weight": {v}, "labels": {{"sport": 1}}}}',
    "labels.sport": '{{"id": "r", "phrase": "goal", "labels": {{"sport": {v}}}}}',
    "experts.0": '{{"id": "r", "phrase": "goal", "experts": {{"0": {v}}}}}',
}


def _record(field: str, value: Any) -> dict[str, Any]:
    record: dict[str, Any] = {"id": "r", "phrase": "goal", "labels": {"sport": 1}}
    if field == "weight":
        record["weight"] = value
    elif field == "labels.sport":
        record["labels"] = {"sport": value}
    else:
        record["experts"] = {"0": value}
    return record


@pytest.mark.parametrize("field", sorted(FIELDS))
@pytest.mark.parametrize("bad", sorted(BAD_SCORES))
def test_bad_rule_number(tmp_path: Path, field: str, bad: str) -> None:
    text, value = BAD_SCORES[bad]
    line = "# a comment first, so the rule is on line 2\n" + FIELDS[field].format(v=text) + "\n"
    rules, problems = parse_rules(line.splitlines(), source="t.jsonl")
    assert rules == [] and [(p.line, p.field) for p in problems] == [(2, field)], problems
    assert "finite number" in problems[0].message
    path = tmp_path / "rules.jsonl"
    path.write_text(line, encoding="utf8")
    with pytest.raises(RuleFileError, match="SSE-E020") as err:
        RuleSet.from_file(path)
    assert f"{path}:2: {field}:" in str(err.value)
    result = run_cli("rules", "check", path, "--json")
    assert result.exit_code == 1 and json.loads(result.output)["problems"][0]["field"] == field
    if bad != "giant int":  # msgpack holds at most 64-bit ints; such a blob cannot exist
        blob = msgpack.packb({"format": "spacy-sparse-expert.rules", "version": 1, "source": "",
                              "rules": [_record(field, value)]}, use_bin_type=True)
        with pytest.raises(RuleFileError) as err:
            RuleSet.from_bytes(blob)
        assert err.value.problems[0].field == field


@pytest.mark.parametrize("field", sorted(FIELDS))
@pytest.mark.parametrize("value", ["10000", "-10000", "1e4", "0", "-0.5", "1e-300"])
def test_rule_numbers_within_bound_are_kept(field: str, value: str) -> None:
    rules = RuleSet.from_jsonl(FIELDS[field].format(v=value))
    rule = rules[0]
    got = {"weight": rule.weight, "labels.sport": rule.labels.get("sport"), "experts.0": rule.experts.get(0)}[field]
    assert got == float(value)


@FAST
@given(value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**30, 10**30)),
       field=st.sampled_from(sorted(FIELDS)))
def test_any_number_is_kept_iff_finite_and_bounded(value: float, field: str) -> None:
    text = json.dumps(value)  # NaN / Infinity as Python's json writes them
    rules, problems = parse_rules([FIELDS[field].format(v=text)])
    expected = math.isfinite(value) and abs(value) <= MAX_RULE_SCORE
    assert bool(rules) == expected and bool(problems) == (not expected)


def test_rules_at_the_bound_cannot_overflow_float32(tmp_path: Path) -> None:
    """Many rules at the bound, all hitting every token of a long doc: the label and
    expert biases stay finite (the sums the bound is chosen for)."""
    lines = [json.dumps({"id": f"r{i}", "phrase": "goal", "weight": MAX_RULE_SCORE,
                         "labels": {"sport": MAX_RULE_SCORE, "tech": -MAX_RULE_SCORE},
                         "experts": {"0": MAX_RULE_SCORE}}) for i in range(50)]
    rules = RuleSet.from_jsonl("\n".join(lines))
    nlp = spacy.blank("en")
    featurizer = KnowledgeFeaturizer(nlp.vocab, None, rules, labels=["sport", "tech"], n_experts=2)
    knowledge = featurizer(nlp.make_doc(" ".join(["goal"] * 2000)))
    assert np.isfinite(knowledge.label_bias).all() and np.isfinite(knowledge.expert_bias).all()
    assert knowledge.label_bias[0] > 0 > knowledge.label_bias[1]
