"""A reader of a KB directory sees exactly one complete KB while imports replace it.

Writers import two different graphs alternately into one output while readers load it
in a loop (real processes); every load must be entirely one of the two KBs. Then the
same race made deterministic: the folder is swapped at each point of a read."""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import resource
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest

from spacy_sparse_expert.errors import KBFormatError, KBImportError
from spacy_sparse_expert.kb import storage
from spacy_sparse_expert.kb.compile import import_rdf

LABEL = "<http://www.w3.org/2000/01/rdf-schema#label>"
CTX = multiprocessing.get_context("fork")  # the package is imported once, in the test process


def write_graph(path: Path, n: int, word: str) -> Path:
    with path.open("w", encoding="utf8") as fh:
        for i in range(n):
            fh.write(f'<http://example.org/{word}{i}> {LABEL} "{word} {i}" .\n'
                     f"<http://example.org/{word}{i}> <http://example.org/next> "
                     f"<http://example.org/{word}{(i + 1) % n}> .\n")
    return path


def fingerprint(meta: dict[str, Any], tables: storage.Tables, arrays: storage.Arrays) -> tuple[str, str, str]:
    """(source sha256 from meta, hash of the tables, hash of the arrays): one per part."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(name.encode() + arrays[name].dtype.str.encode() + np.ascontiguousarray(arrays[name]).tobytes())
    lists = {name: list(table) for name, table in tables.items()}  # format 2 tables are read per access
    return (meta["sources"][0]["sha256"], hashlib.sha256(msgpack.packb(lists)).hexdigest(), digest.hexdigest())


@pytest.fixture(scope="module")
def two_kbs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Graphs A (20 entities) and B (35), and the fingerprint of each KB's three parts."""
    root = tmp_path_factory.mktemp("graphs")
    graphs = {"A": write_graph(root / "a.nt", 20, "alpha"), "B": write_graph(root / "b.nt", 35, "beta")}
    parts = {}
    for name, graph in graphs.items():
        import_rdf([graph], root / f"kb_{name}")
        parts[name] = fingerprint(*storage.read_parts(root / f"kb_{name}"))
    assert len({p[i] for p in parts.values() for i in range(3)}) == 6  # every part tells A from B
    return {"graphs": graphs, "parts": parts, "root": root}


def _limit_cpu(seconds: int) -> None:
    """A runaway child is killed by the kernel instead of taking the shared machine."""
    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds))


def _writer(out: str, graphs: list[str], imports: int, results: Any) -> None:
    _limit_cpu(120)
    done = busy = 0
    while done < imports:
        for graph in graphs:
            try:
                import_rdf([graph], out)
                done += 1
            except KBImportError as err:
                if "SSE-E012" not in str(err):  # the other writer holds the lock: try again
                    raise
                busy += 1
    results.put(("writer", done, busy))


def _reader(out: str, parts: dict[str, tuple[str, str, str]], stop: Any, results: Any) -> None:
    _limit_cpu(120)
    which = {part: name for name, three in parts.items() for part in three}
    seen = {"A": 0, "B": 0}
    bad: list[str] = []
    while not stop.is_set():
        try:
            names = [which.get(part, "?") for part in fingerprint(*storage.read_parts(Path(out)))]
        except Exception as err:  # noqa: BLE001 - any failure to read is what the test looks for
            bad.append(f"{type(err).__name__}: {err}")
            continue
        if len(set(names)) == 1 and names[0] in seen:
            seen[names[0]] += 1
        else:
            bad.append(f"mixed parts {names}")
    results.put(("reader", seen, bad[:5], len(bad)))


def test_readers_see_one_whole_kb_while_writers_replace_it(two_kbs: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "kb"
    graphs = [str(two_kbs["graphs"]["A"]), str(two_kbs["graphs"]["B"])]
    import_rdf([graphs[0]], out)
    results = CTX.Queue()
    stop = CTX.Event()
    readers = [CTX.Process(target=_reader, args=(str(out), two_kbs["parts"], stop, results)) for _ in range(2)]
    writers = [CTX.Process(target=_writer, args=(str(out), graphs[::step], 15, results)) for step in (1, -1)]
    for proc in readers + writers:
        proc.start()
    try:
        for proc in writers:
            proc.join(timeout=240)
            assert proc.exitcode == 0, f"writer exit code {proc.exitcode}"
        stop.set()
        for proc in readers:
            proc.join(timeout=60)
            assert proc.exitcode == 0, f"reader exit code {proc.exitcode}"
    finally:
        stop.set()
        for proc in readers + writers:
            if proc.is_alive():
                proc.kill()
                proc.join()
    reports = [results.get(timeout=10) for _ in readers + writers]
    imports = sum(r[1] for r in reports if r[0] == "writer")
    assert imports >= 30
    for _, seen, bad, n_bad in (r for r in reports if r[0] == "reader"):
        assert n_bad == 0, bad
        assert seen["A"] + seen["B"] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kb"]  # no temporary folder, no lock left


# --- the same race, one point at a time ------------------------------------------------------


@pytest.fixture()
def kb_pair(two_kbs: dict[str, Any], tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """`make(name)`: a fresh copy of KB A or B beside the output tmp_path/kb (A at first)."""
    counter = iter(range(1000))

    def make(name: str) -> Path:
        path = tmp_path / f"ready-{name}-{next(counter)}"
        shutil.copytree(two_kbs["root"] / f"kb_{name}", path)
        return path

    shutil.copytree(two_kbs["root"] / "kb_A", tmp_path / "kb")
    yield make


def swap_in(new: Path, out: Path) -> None:
    """What an import does: exchange, then delete the previous KB."""
    assert storage.exchange(new, out), "renameat2(RENAME_EXCHANGE) is not available here"
    shutil.rmtree(new)


class SwappingOs:
    """`os` as storage.py sees it, except that opening `name` relative to a directory
    first swaps another KB into the output (`times` times)."""

    def __init__(self, name: str, swap: Callable[[], None], times: int = 1) -> None:
        self.name, self.swap, self.left, self.opens = name, swap, times, 0

    def __getattr__(self, attr: str) -> Any:
        return getattr(os, attr)

    def open(self, path: Any, flags: int, mode: int = 0o777, *, dir_fd: int | None = None) -> int:
        if dir_fd is not None and path == self.name and self.left:
            self.left -= 1
            self.swap()
        self.opens += dir_fd is None
        return os.open(path, flags, mode, dir_fd=dir_fd)


@pytest.mark.parametrize("name", storage.KB_FILES)
def test_swap_before_opening_a_file_restarts_the_read(name: str, kb_pair: Callable[[str], Path], tmp_path: Path,
                                                       two_kbs: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "kb"
    hook = SwappingOs(name, lambda: swap_in(kb_pair("B"), out))
    monkeypatch.setattr(storage, "os", hook)
    assert fingerprint(*storage.read_parts(out)) == two_kbs["parts"]["B"]
    assert hook.opens == 2  # the folder was opened again: one retry


def test_swap_after_the_files_are_open_reads_the_old_kb_whole(kb_pair: Callable[[str], Path], tmp_path: Path,
                                                              two_kbs: dict[str, Any],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "kb"
    read_fd = storage._read_fd
    swapped = []

    def swap_then_read(fd: int) -> bytes:
        if not swapped:
            swapped.append(True)
            swap_in(kb_pair("B"), out)  # the old KB's files are unlinked, still open
        return read_fd(fd)

    monkeypatch.setattr(storage, "_read_fd", swap_then_read)
    assert fingerprint(*storage.read_parts(out)) == two_kbs["parts"]["A"]
    assert fingerprint(*storage.read_parts(out)) == two_kbs["parts"]["B"]


def test_replaced_on_every_attempt_gives_e083(kb_pair: Callable[[str], Path], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "kb"
    monkeypatch.setattr(storage, "READ_ATTEMPTS", 4)
    hook = SwappingOs(storage.STRINGS_FILE, lambda: swap_in(kb_pair("B"), out), times=100)
    monkeypatch.setattr(storage, "os", hook)
    with pytest.raises(KBFormatError, match=r"SSE-E083.*replaced 4 times"):
        storage.read_parts(out)
    assert hook.opens == 4


def test_a_missing_file_is_an_error_at_once(kb_pair: Callable[[str], Path], tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "kb"
    (out / storage.STRINGS_FILE).unlink()
    hook = SwappingOs("", lambda: None, times=0)
    monkeypatch.setattr(storage, "os", hook)
    with pytest.raises(KBFormatError, match=r"SSE-E009.*missing strings\.bin"):
        storage.read_parts(out)
    assert hook.opens == 1  # not replaced, so not retried


def test_the_window_of_the_two_rename_fallback_is_waited_out(kb_pair: Callable[[str], Path], tmp_path: Path,
                                                             two_kbs: dict[str, Any]) -> None:
    """Without RENAME_EXCHANGE the output is missing for a moment, the previous KB beside
    it as `.kb.old-*`: a reader waits for the new one instead of failing."""
    out = tmp_path / "kb"
    aside = tmp_path / ".kb.old-AbCd1234"
    os.rename(out, aside)
    new = kb_pair("B")
    timer = threading.Timer(0.05, lambda: os.rename(new, out))
    timer.start()
    try:
        assert fingerprint(*storage.read_parts(out)) == two_kbs["parts"]["B"]
    finally:
        timer.join()
    shutil.rmtree(aside)
    shutil.rmtree(out)
    start = time.monotonic()
    with pytest.raises(KBFormatError, match=r"SSE-E009.*no such directory"):
        storage.read_parts(out)  # nothing beside it: missing is missing, no waiting
    assert time.monotonic() - start < 1.0


def test_a_fifo_in_place_of_a_kb_file_does_not_block(kb_pair: Callable[[str], Path], tmp_path: Path) -> None:
    out = tmp_path / "kb"
    (out / storage.META_FILE).unlink()
    os.mkfifo(out / storage.META_FILE)
    errors: list[BaseException] = []

    def read() -> None:
        try:
            storage.read_parts(out)
        except BaseException as err:  # noqa: BLE001 - handed to the test thread
            errors.append(err)

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    thread.join(timeout=20)
    assert not thread.is_alive(), "read_parts blocked on a FIFO"
    assert len(errors) == 1 and "SSE-E009" in str(errors[0]) and "missing meta.json" in str(errors[0])
