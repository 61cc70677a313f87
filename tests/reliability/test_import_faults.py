"""Imports killed with SIGKILL at every stage, and two imports racing for one output.

A worker process (import_worker.py) runs real imports in forked children that stop at a
chosen point; the test kills them there. Whatever the point, the output directory holds
either the previous KB byte for byte or the complete new one, it loads, and the next
import succeeds and clears what the killed one left behind (no stale lock, no temporary
directories). The slow variant kills a real FB15k-237 import at random moments."""
from __future__ import annotations

import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from spacy_sparse_expert import KnowledgeBase
from spacy_sparse_expert.errors import KBImportError
from spacy_sparse_expert.kb import storage
from spacy_sparse_expert.kb.compile import import_rdf

from .conftest import MALFORMED, assert_clean_failure, run_cli

REPO = Path(__file__).parent.parent.parent
FB15K = REPO / "knowledge" / "fb15k237.nt.gz"
SMALL = REPO / "tests" / "fixtures" / "kb_small.ttl"
LABEL = "<http://www.w3.org/2000/01/rdf-schema#label>"
N_MEDIUM = 20_000


class Worker:
    """The import worker process; its output lines arrive through a queue."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).parent / "import_worker.py")],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())

    def start(self, sources: list[Path], output: Path, pause: str | None = None) -> None:
        assert self.proc.stdin is not None
        command = {"sources": [str(s) for s in sources], "output": str(output), "pause": pause}
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def expect(self, prefix: str) -> list[str]:
        """The next line starting with `prefix`, split. (The wait is a guard against a
        hang, not a timing assertion.)"""
        while True:
            line = self.lines.get(timeout=300)
            assert not line.startswith("error"), line
            if line.startswith(prefix):
                return line.split()

    def close(self) -> None:
        self.proc.kill()  # no child is left running; skip the interpreter's slow shutdown
        self.proc.wait(timeout=60)


@pytest.fixture(scope="module")
def worker() -> Iterator[Worker]:
    w = Worker()
    yield w
    w.close()


@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,000 entities with a label, a type and a relation each (60,000 triples)."""
    path = tmp_path_factory.mktemp("medium") / "medium.nt"
    with path.open("w") as fh:
        for i in range(N_MEDIUM):
            fh.write(f'<http://example.org/e{i}> {LABEL} "Entity {i}" .\n'
                     f"<http://example.org/e{i}> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> "
                     f"<http://example.org/T{i % 50}> .\n"
                     f"<http://example.org/e{i}> <http://example.org/next> "
                     f"<http://example.org/e{(i + 1) % N_MEDIUM}> .\n")
    return path


def state(path: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(path.iterdir())}


def leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name != "kb")


def previous_kb(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    out = tmp_path / "kb"
    import_rdf([SMALL], out)
    return out, state(out)


def kill(worker: Worker, pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    assert worker.expect("exit")[1:] == [str(pid), "-9"]


def next_import_succeeds(out: Path) -> None:
    import_rdf([SMALL], out, languages=["fr", "en"])
    assert KnowledgeBase.from_disk(out).meta["options"]["languages"] == ["fr", "en"]
    assert leftovers(out.parent) == []  # no lock file, no temporary or old directory


def test_killed_while_parsing_fb15k(worker: Worker, tmp_path: Path) -> None:
    out, before = previous_kb(tmp_path)
    worker.start([FB15K], out, pause="parse")
    _, stage, pid = worker.expect("paused")
    assert stage == "parse" and (tmp_path / ".kb.lock").exists()  # the import holds the lock
    kill(worker, int(pid))
    assert state(out) == before and KnowledgeBase.from_disk(out).n_entities == 10
    next_import_succeeds(out)  # the kernel released the lock of the dead process


def test_killed_while_writing_the_new_kb(worker: Worker, tmp_path: Path, medium: Path) -> None:
    out, before = previous_kb(tmp_path)
    worker.start([medium], out, pause="write")
    _, _, pid = worker.expect("paused")
    partial = [p for p in tmp_path.iterdir() if p.name.startswith(".kb.tmp-")]
    assert len(partial) == 1 and (partial[0] / "meta.json").exists()  # half of the new KB is on disk
    kill(worker, int(pid))
    assert state(out) == before and KnowledgeBase.from_disk(out).n_entities == 10
    next_import_succeeds(out)


def test_killed_right_after_the_swap(worker: Worker, tmp_path: Path, medium: Path) -> None:
    out, before = previous_kb(tmp_path)
    worker.start([medium], out, pause="swap")
    _, _, pid = worker.expect("paused")
    kill(worker, int(pid))
    kb = KnowledgeBase.from_disk(out)  # the new KB, complete
    assert kb.n_entities == N_MEDIUM and kb.n_relations == N_MEDIUM
    old = [p for p in tmp_path.iterdir() if p.name.startswith(".kb.tmp-")]
    assert len(old) == 1 and state(old[0]) == before  # the previous KB, awaiting cleanup
    next_import_succeeds(out)


def test_killed_between_the_two_renames_of_the_fallback(worker: Worker, tmp_path: Path, medium: Path) -> None:
    """Where RENAME_EXCHANGE is missing: the next import puts the previous KB back, even
    when that import itself fails."""
    out, before = previous_kb(tmp_path)
    worker.start([medium], out, pause="fallback")
    _, _, pid = worker.expect("paused")
    kill(worker, int(pid))
    assert not out.exists()
    with pytest.raises(KBImportError, match="SSE-E002"):
        import_rdf([MALFORMED / "truncated.ttl"], out)
    assert state(out) == before and KnowledgeBase.from_disk(out).n_entities == 10
    next_import_succeeds(out)


def test_two_imports_into_one_directory(worker: Worker, tmp_path: Path, medium: Path) -> None:
    """The second import, through the CLI, loses with a clear message and changes nothing;
    the first one then completes."""
    out, before = previous_kb(tmp_path)
    worker.start([medium], out, pause="parse")
    _, _, pid = worker.expect("paused")
    result = run_cli("kb", "import", SMALL, "--output", out, "--language", "fr", "-q")
    assert_clean_failure(result, "E012", str(out), ".kb.lock", "Wait for it to finish")
    assert state(out) == before
    os.kill(int(pid), signal.SIGUSR1)  # let the first import go on
    assert worker.expect("exit")[1:] == [pid, "0"]
    assert KnowledgeBase.from_disk(out).n_entities == N_MEDIUM
    assert leftovers(tmp_path) == []


def test_exchange_swaps_two_directories(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    if not storage.exchange(a, b):
        pytest.skip("no renameat2(RENAME_EXCHANGE) here; the fallback is tested above")
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"


@pytest.mark.slow
def test_killed_at_random_moments(worker: Worker, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A real FB15k-237 import (no pause) killed 12 times, at moments spread evenly (with
    jitter) over the whole import and a little past its end: each time the output is the
    old KB byte for byte or the complete new one, and it loads."""
    out, _ = previous_kb(tmp_path)
    start = time.monotonic()
    worker.start([FB15K], out)
    worker.expect("exit")
    duration = time.monotonic() - start
    reference = state(out)
    rng = random.Random(1234)
    outcomes = {"old": 0, "new": 0}
    for i in range(12):
        import_rdf([SMALL], out)
        before = state(out)
        worker.start([FB15K], out)
        pid = worker.expect("started")[1]
        time.sleep(duration * 1.05 * (i + rng.random()) / 12)
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:  # already finished and reaped
            pass
        assert worker.expect("exit")[1] == pid
        now = state(out)
        if now == before:
            outcomes["old"] += 1
        else:
            assert now.keys() == reference.keys()
            assert now["arrays.npz"] == reference["arrays.npz"] and now["tables.msgpack"] == reference["tables.msgpack"]
            outcomes["new"] += 1
        KnowledgeBase.from_disk(out)
    next_import_succeeds(out)
    with capsys.disabled():
        print(f"\nrandom kills of an FB15k-237 import ({duration:.1f} s): {outcomes}")
    assert sum(outcomes.values()) == 12


@pytest.mark.parametrize("errno_, words", [(28, "No space left on device"), (13, "Permission denied")])
def test_write_failure_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, errno_: int,
                                       words: str) -> None:
    """Disk full or no permission while writing: E062, the previous KB as it was."""
    out, before = previous_kb(tmp_path)

    def fail(self: KnowledgeBase, path: Path) -> None:
        (Path(path) / "meta.json").write_text("{}")
        raise OSError(errno_, os.strerror(errno_))

    monkeypatch.setattr(KnowledgeBase, "to_disk", fail)
    result = run_cli("kb", "import", SMALL, "--output", out, "--language", "fr", "-q")
    assert_clean_failure(result, "E062", str(out), words, "previous KB there is unchanged")
    assert state(out) == before and leftovers(tmp_path) == []
