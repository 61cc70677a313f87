"""Bad JSONL and DocBin inputs through the three JSONL readers (rule files, `data convert`,
`distill --unlabelled`) and their CLI commands: always one coded error naming the file and
the line, exit status 1, no traceback, nothing written; property-based: any bytes at all
give records or a coded error, never another exception."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import spacy
import srsly
from hypothesis import given
from hypothesis import strategies as st
from spacy.tokens import DocBin

import spacy_sparse_expert.jsonl
from spacy_sparse_expert.data.convert import convert_jsonl, read_jsonl
from spacy_sparse_expert.distill.data import read_docbin, read_unlabelled
from spacy_sparse_expert.errors import RuleFileError, SparseExpertError
from spacy_sparse_expert.rules.rules import RuleSet, parse_rules

from .conftest import FAST, run_cli

GOOD = {"data": '{"text": "fine", "label": "a"}', "unlabelled": '{"text": "fine", "label": "a"}',
        "rules": '{"id": "ok", "phrase": "fine"}'}
CODES = {"data": "E040", "unlabelled": "E074", "rules": "E020"}


def line(text: str) -> bytes:
    return text.encode("utf8") + b"\n"


# name -> (file bytes without the good lines, line the fault is on when it follows one good
# line (None: the fault is the file's start), words of the reason)
FAULTS: dict[str, tuple[bytes, int | None, str]] = {
    "latin-1": ('{"text": "café", "label": "a"}\n'.encode("latin-1"), 2, "not valid UTF-8: byte 0xe9"),
    "cp1252": (b'{"text": "\x93quoted\x94", "label": "a"}\n', 2, "not valid UTF-8: byte 0x93"),
    "utf-16": ('{"text": "a", "label": "a"}\n'.encode("utf-16"), None, "UTF-16"),
    "utf-16-be-bom": ('\ufeff{"text": "a", "label": "a"}\n'.encode("utf-16-be"), None, "UTF-16 (big-endian)"),
    "utf-32": ('{"text": "a", "label": "a"}\n'.encode("utf-32"), None, "UTF-32"),
    "utf-16-le-no-bom": ('{"text": "a", "label": "a"}\n'.encode("utf-16-le"), 2, "NUL byte"),
    "nul": (b'{"text": "a\x00b", "label": "a"}\n', 2, "NUL byte at column 12"),
    "nesting-100k": (line('{"text": "a", "label": ' + "[" * 100_000 + "]" * 100_000 + "}"), 2, "nested too deeply"),
    "nesting-100k-objects": (line('{"a": ' * 100_000 + "1" + "}" * 100_000), 2, "nested too deeply"),
    "huge-int": (line('{"text": "a", "label": ' + "9" * 5000 + "}"), 2, "4300 digits"),
    "lone-surrogate": (line('{"text": "a\\ud800", "label": "a"}'), 2, "lone surrogate"),
    "lone-surrogate-key": (line('{"\\udfff": 1, "text": "a", "label": "a"}'), 2, "lone surrogate"),
    "truncated": (line('{"text": "a", "label": '), 2, "invalid JSON at column"),
    "repeated-key": (line('{"text": "a", "text": "b", "label": "a"}'), 2, "more than once"),
    "garbage": (bytes(range(0x80, 0x100)), 2, "not valid UTF-8: byte 0x80 at column 1"),
}
# whole JSON values that are not objects: valid JSON, wrong shape
NOT_OBJECTS = ['["a"]', '"text"', "null", "42", "true", "1e999", "[]"]
SHAPE_WORDS = {"data": "expected a JSON object", "unlabelled": "not an object", "rules": "expected a JSON object"}


def content(kind: str, fault: bytes, at: int | None) -> bytes:
    return fault if at is None else line(GOOD[kind]) + fault


def read_with(kind: str, path: Path, out: Path) -> object:
    if kind == "data":
        return convert_jsonl(path, out)
    if kind == "unlabelled":
        return read_unlabelled(path)
    return RuleSet.from_file(path)


def expect_coded(kind: str, path: Path, out: Path, at: int, words: str) -> str:
    with pytest.raises(SparseExpertError) as info:
        read_with(kind, path, out)
    message = str(info.value)
    assert f"[SSE-{CODES[kind]}]" in message, message
    assert str(path) in message and words in message, message
    assert (f"{path}:{at}:" if kind == "rules" else f"line {at}:") in message, message
    assert not out.exists()
    return message


@pytest.mark.parametrize("kind", list(CODES))
@pytest.mark.parametrize("name", list(FAULTS))
def test_each_fault_through_each_reader(tmp_path: Path, kind: str, name: str) -> None:
    fault, at, words = FAULTS[name]
    path = tmp_path / f"{name}.jsonl"
    path.write_bytes(content(kind, fault, at))
    expect_coded(kind, path, tmp_path / "out.spacy", at or 1, words)


@pytest.mark.parametrize("kind", list(CODES))
@pytest.mark.parametrize("value", NOT_OBJECTS)
def test_lines_that_are_not_objects(tmp_path: Path, kind: str, value: str) -> None:
    path = tmp_path / "shape.jsonl"
    path.write_bytes(line(GOOD[kind]) + line(value))
    expect_coded(kind, path, tmp_path / "out.spacy", 2, SHAPE_WORDS[kind])


def test_a_bom_and_any_line_ends_are_fine_for_every_reader(tmp_path: Path) -> None:
    for kind in CODES:
        path = tmp_path / f"{kind}.jsonl"
        path.write_bytes(b"\xef\xbb\xbf" + (GOOD[kind] + "\r\n\r\n" + GOOD[kind].replace("ok", "ok2") + "\r").encode())
        assert len(list(read_jsonl(path)) if kind == "data" else read_with(kind, path, path)) == 2  # type: ignore


@pytest.fixture()
def no_hang() -> Iterator[None]:
    """A reader that opens a FIFO blocks for ever: fail after 20 s instead."""
    def fail(signum: int, frame: object) -> None:
        raise TimeoutError("a reader blocked on a FIFO")

    before = signal.signal(signal.SIGALRM, fail)
    signal.alarm(20)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, before)


def whole_file_cases(tmp_path: Path) -> list[tuple[str, Path, dict[str, str]]]:
    """(name, path, reader -> error code) for paths that are not a readable JSONL file."""
    folder = tmp_path / "folder.jsonl"
    folder.mkdir()
    (folder / "train.jsonl").write_bytes(line(GOOD["data"]))
    cases = [("directory", folder, dict.fromkeys(CODES, "E140")),
             ("missing", tmp_path / "missing.jsonl", {"data": "E042", "unlabelled": "E042", "rules": "E021"})]
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"\n \n\t\n")
    cases.append(("empty", empty, {"data": "E043", "unlabelled": "E043"}))  # no rules is a valid rule file
    if hasattr(os, "mkfifo"):
        fifo = tmp_path / "fifo.jsonl"
        os.mkfifo(fifo)
        cases.append(("fifo", fifo, dict.fromkeys(CODES, "E141")))
    return cases


def test_whole_file_faults_through_each_reader(tmp_path: Path, no_hang: None) -> None:
    for name, path, codes in whole_file_cases(tmp_path):
        for kind, code in codes.items():
            with pytest.raises(SparseExpertError, match=rf"\[SSE-{code}\]") as info:
                read_with(kind, path, tmp_path / "out.spacy")
            assert str(path) in str(info.value), (name, kind)
            if kind == "rules":
                assert isinstance(info.value, RuleFileError)
    message = str(pytest.raises(SparseExpertError, read_unlabelled, tmp_path / "folder.jsonl").value)
    assert "is a directory" in message and "It holds train.jsonl" in message
    assert not (tmp_path / "out.spacy").exists()


# --- the CLI commands ---------------------------------------------------------------------


def one_coded_line(output: str, code: str, *words: str) -> str:
    lines = [x for x in output.splitlines() if x.strip()]
    assert "Traceback" not in output, output
    assert len(lines) == 1 and lines[0].startswith(f"[SSE-{code}]"), output
    for word in words:
        assert word in lines[0], (word, output)
    return lines[0]


def cli_for(kind: str, tmp_path: Path) -> Callable[[Path], list[object]]:
    teacher = tmp_path / "teacher"  # the preflight fails before the teacher is loaded
    teacher.mkdir(exist_ok=True)
    return {
        "data": lambda p: ["data", "convert", p, tmp_path / "out.spacy"],
        "unlabelled": lambda p: ["distill", teacher, "--output", tmp_path / "student", "--unlabelled", p, "--quiet"],
        "rules": lambda p: ["rules", "check", p],
    }[kind]


@pytest.mark.parametrize("kind", ["data", "unlabelled"])
def test_each_fault_through_the_cli(tmp_path: Path, kind: str, no_hang: None) -> None:
    args = cli_for(kind, tmp_path)
    for name, (fault, at, words) in FAULTS.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(content(kind, fault, at))
        result = run_cli(*args(path))
        assert result.exit_code == 1, (name, result.output)
        one_coded_line(result.output, CODES[kind], str(path), f"line {at or 1}:", words)
    for name, path, codes in whole_file_cases(tmp_path):
        if kind in codes:
            result = run_cli(*args(path))
            assert result.exit_code == 1, (name, result.output)
            one_coded_line(result.output, codes[kind], str(path))
    assert not (tmp_path / "out.spacy").exists() and not (tmp_path / "student").exists()


def test_each_fault_through_rules_check(tmp_path: Path, no_hang: None) -> None:
    args = cli_for("rules", tmp_path)
    for name, (fault, at, words) in FAULTS.items():
        path = tmp_path / f"{name}.jsonl"
        path.write_bytes(content("rules", fault, at))
        result = run_cli(*args(path))
        assert result.exit_code == 1 and "Traceback" not in result.output, (name, result.output)
        assert words in result.output and f"line(s) of {path}." in result.output, result.output
        rows = [x.split() for x in result.output.splitlines() if x.startswith("│")]
        assert rows[0][1] == str(at or 1) and words in " ".join(rows[0]), result.output  # first: the fault
    for name, path, codes in whole_file_cases(tmp_path):
        if "rules" in codes:
            result = run_cli(*args(path))
            assert result.exit_code == 1, (name, result.output)
            one_coded_line(result.output, codes["rules"], str(path))


# --- distill: --train / --dev / --report / --threads ----------------------------------------


def distill_args(tmp_path: Path, *extra: object) -> list[object]:
    teacher = tmp_path / "teacher"
    teacher.mkdir(exist_ok=True)
    return ["distill", teacher, "--output", tmp_path / "student", "--quiet", *extra]


def test_distill_train_directory_says_what_to_pass(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    DocBin().to_disk(corpus / "train.spacy")
    result = run_cli(*distill_args(tmp_path, "--train", corpus))
    assert result.exit_code == 1
    text = one_coded_line(result.output, "E140", str(corpus), "is a directory", "It holds train.spacy")
    assert "does not exist" not in text


@pytest.mark.parametrize(("option", "make", "code", "words"), [
    ("--train", lambda p: p.write_bytes(line(GOOD["data"])), "E143", "looks like JSON"),
    ("--dev", lambda p: p.write_bytes(b""), "E143", "it is empty"),
    ("--train", lambda p: p.write_bytes(b"PK\x03\x04 a zip file"), "E143", "zlib header"),
    ("--train", lambda p: None, "E042", "does not exist"),
    ("--dev", lambda p: os.mkfifo(p), "E141", "not a regular file"),
    ("--report", lambda p: p.mkdir(), "E144", "is a directory"),
    ("--report", lambda p: None, "E144", "does not exist"),
    ("--threads", lambda p: None, "E144", "at least 1 thread"),
    ("--config", lambda p: p.mkdir(), "E140", "is a directory"),
])
def test_distill_arguments(tmp_path: Path, option: str, make: Callable[[Path], object], code: str,
                           words: str, no_hang: None) -> None:
    path = tmp_path / ("no-folder/report.json" if option == "--report" and words == "does not exist" else "arg.spacy")
    make(path)
    (tmp_path / "u.jsonl").write_bytes(line(GOOD["unlabelled"]))
    value = "0" if option == "--threads" else path
    result = run_cli(*distill_args(tmp_path, "--unlabelled", tmp_path / "u.jsonl", option, value))
    assert result.exit_code == 1
    one_coded_line(result.output, code, words)
    assert not (tmp_path / "student").exists()


def tampered_docbins() -> dict[str, bytes]:
    nlp = spacy.blank("en")
    db = DocBin()
    db.add(nlp("hello world"))
    good = db.to_bytes()
    msg = srsly.msgpack_loads(zlib.decompress(good))

    def packed(value: object) -> bytes:
        return zlib.compress(srsly.msgpack_dumps(value))

    return {"truncated": good[: len(good) // 2], "zlib-garbage": zlib.compress(b"\xc1garbage"),
            "empty-map": packed({}), "a-list": packed([1, 2]), "no-attrs": packed({**msg, "attrs": []}),
            "bad-lengths": packed({**msg, "lengths": b"\x01\x02\x03"}), "cats": packed({**msg, "cats": 5}),
            "flags": packed({**msg, "flags": [5]}), "spaces": packed({**msg, "spaces": b""}),
            "tokens": packed({**msg, "tokens": "abc"})}


def test_tampered_docbins(tmp_path: Path) -> None:
    nlp = spacy.blank("en")
    for name, data in tampered_docbins().items():
        path = tmp_path / f"{name}.spacy"
        path.write_bytes(data)
        with pytest.raises(SparseExpertError, match=r"\[SSE-E143\]") as info:
            read_docbin(path, nlp)
        assert str(path) in str(info.value) and "data convert" in str(info.value), name


# --- any input ----------------------------------------------------------------------------

json_lines = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                          lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=5), kids,
                                                                                   max_size=3), max_leaves=8)
raw_lines = st.one_of(st.binary(max_size=60), json_lines.map(lambda v: json.dumps(v).encode()),
                      st.fixed_dictionaries({"text": st.text(max_size=10), "label": st.text(max_size=4)}).map(
                          lambda v: json.dumps(v, ensure_ascii=False).encode("utf8")))


@FAST
@given(lines=st.lists(raw_lines, max_size=5), sep=st.sampled_from([b"\n", b"\r\n", b"\r"]))
def test_any_bytes_give_records_or_a_coded_error(tmp_path: Path, lines: list[bytes], sep: bytes) -> None:
    path = tmp_path / "any.jsonl"
    path.write_bytes(sep.join(lines))
    for read in (lambda: list(read_jsonl(path)), lambda: read_unlabelled(path)):
        try:
            read()
        except SparseExpertError as err:
            assert "[SSE-E0" in str(err) or "[SSE-E14" in str(err)
            assert str(path) in str(err)
    parse_rules(path.read_bytes().splitlines(), source=str(path))  # problems, never an exception


# --- bounded memory -----------------------------------------------------------------------

_BOUNDED = textwrap.dedent("""
    import resource, sys, types
    from pathlib import Path
    # the package without its __init__, which loads torch (10 s): the reader needs neither
    package = types.ModuleType("spacy_sparse_expert")
    package.__path__ = [sys.argv[2]]
    sys.modules["spacy_sparse_expert"] = package
    from spacy_sparse_expert.errors import Errors, SparseExpertError
    from spacy_sparse_expert.jsonl import input_lines

    vm_kb = int(open("/proc/self/status").read().split("VmSize:")[1].split()[0])
    limit = vm_kb * 1024 + 256 * 1024 * 1024  # 256 MiB over what the imports use
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        list(input_lines(Path(sys.argv[1]), "missing", bad_line=Errors.E040))
    except SparseExpertError as err:
        print(err)
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's")
def test_a_file_without_newlines_is_not_read_whole(tmp_path: Path) -> None:
    """A 4 GiB file of one line (sparse: no disk used) fails after one bounded read of
    MAX_LINE_BYTES (64 MiB), under an address-space limit it could never fit in."""
    path = tmp_path / "one-line.jsonl"
    with path.open("wb") as f:
        f.truncate(4 * 1024**3)
    package = Path(spacy_sparse_expert.__file__).parent
    done = subprocess.run([sys.executable, "-c", _BOUNDED, str(path), str(package)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "[SSE-E040]" in done.stdout and "line 1: a line longer than 67,108,864 bytes" in done.stdout, done.stdout


def test_data_readers_use_the_bounded_line_reader(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """(Rule files are read whole, as `read_rule_lines` returns a list: small files.)"""
    monkeypatch.setattr(spacy_sparse_expert.jsonl, "MAX_LINE_BYTES", 1000)
    for kind in ("data", "unlabelled"):
        path = tmp_path / f"{kind}.jsonl"
        path.write_bytes(line(GOOD[kind]) + line(json.dumps({"text": "word " * 300})) + line(GOOD[kind]))
        expect_coded(kind, path, tmp_path / "out.spacy", 2, "a line longer than 1,000 bytes")
