"""A process that runs KB imports to be killed: `python import_worker.py` reads one JSON
command per line on stdin and forks a child for each, so the package is imported once.

Command: {"sources": [...], "output": DIR, "pause": STAGE or null, "kwargs": {...}}.
The child runs `import_rdf`; at STAGE it prints `paused STAGE PID` and blocks until
SIGUSR1 (resume) or until the test kills it. Stages:

- "parse":    inside the parser's loop (the first progress report, after 32,768 triples)
- "write":    in the temporary directory, the KB's files written and the start of
              alias_index.npz (the last file np.savez writes)
- "swap":     right after the new KB was exchanged with the old one, before cleanup
- "fallback": without RENAME_EXCHANGE, between renaming the old KB aside and renaming
              the new one in

The worker prints `started PID` for each child and `exit PID STATUS` when it ends
(STATUS -9 when it was killed).
"""
from __future__ import annotations

import json
import os
import signal
import sys

import numpy as np

from spacy_sparse_expert.kb import replace, storage
from spacy_sparse_expert.kb.compile import import_rdf


def pause(stage: str) -> None:
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    print(f"paused {stage} {os.getpid()}", flush=True)
    signal.sigwait({signal.SIGUSR1})


def install(stage: str | None) -> dict:
    kwargs: dict = {}
    if stage == "parse":
        first = [True]

        def progress(n: int) -> None:
            if first[0]:
                first[0] = False
                pause("parse")
        kwargs["progress"] = progress
    elif stage == "write":
        def savez(fh, **arrays: np.ndarray) -> None:  # noqa: ANN001
            fh.write(b"PK\x03\x04" + b"\x00" * 4096)  # the start of a zip archive, then the kill
            fh.flush()
            pause("write")
        np.savez = savez  # type: ignore[assignment]
    elif stage == "swap":
        exchange = replace.exchange

        def exchange_then_pause(a, b) -> bool:  # noqa: ANN001
            done = exchange(a, b)
            pause("swap")
            return done
        replace.exchange = exchange_then_pause  # type: ignore[assignment]
    elif stage == "fallback":
        replace.exchange = lambda a, b: False  # type: ignore[assignment]
        rename = os.rename
        calls = [0]

        def rename_then_pause(a, b) -> None:  # noqa: ANN001
            rename(a, b)
            calls[0] += 1
            if calls[0] == 1:
                pause("fallback")
        storage.os.rename = rename_then_pause  # type: ignore[attr-defined]
    return kwargs


def main() -> None:
    for line in sys.stdin:
        command = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                kwargs = install(command.get("pause"))
                import_rdf(command["sources"], command["output"], **kwargs, **command.get("kwargs", {}))
            except BaseException as err:  # noqa: BLE001 - reported to the test, which decides
                print(f"error {type(err).__name__}: {err}", flush=True)
                code = 1
            finally:
                sys.stdout.flush()
                os._exit(code)
        print(f"started {pid}", flush=True)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(f"exit {pid} {code}", flush=True)


if __name__ == "__main__":
    main()
