"""A process that reads SPARQL sources under a memory cap: `python sparql_worker.py`
imports the package once, prints `ready`, then reads one JSON command per line on stdin
and forks a child for each, so every fetch is cheap and none can take the machine.

Command: {"url": URL, "timeout": s, "max_response_bytes": n or null, "budget": bytes,
"hard_limit": s}. The child caps its address space at its current size + `budget`
(RLIMIT_AS), reads the source with `read_quads` and prints one JSON line: "error" (the
message of a SparseExpertError), "raw" (any other exception: a bug), or "triples"; and
"seconds", "rss_start_kb", "peak_rss_kb" (VmHWM). A child still running after
`hard_limit` seconds is killed and reported as {"killed": true}.
"""
from __future__ import annotations

import json
import os
import resource
import signal
import sys
import time

from spacy_sparse_expert.errors import SparseExpertError
from spacy_sparse_expert.kb.rdf_sources import read_quads, sparql_source


def status_kb(field: str) -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


def child(command: dict, out: int) -> None:
    size = status_kb("VmSize") * 1024
    resource.setrlimit(resource.RLIMIT_AS, (size + command["budget"], size + command["budget"]))
    result: dict = {"rss_start_kb": status_kb("VmRSS")}
    options = {"timeout": command["timeout"]}
    if command.get("max_response_bytes") is not None:
        options["max_response_bytes"] = command["max_response_bytes"]
    start = time.monotonic()
    try:
        with read_quads(sparql_source(command["url"]), **options) as quads:
            result["triples"] = sum(1 for _ in quads)
    except SparseExpertError as err:
        result["error"] = str(err)
    except BaseException as err:  # noqa: BLE001 - reported to the test, which fails on it
        result["raw"] = f"{type(err).__name__}: {err}"
    result["seconds"] = round(time.monotonic() - start, 3)
    result["peak_rss_kb"] = status_kb("VmHWM")
    os.write(out, (json.dumps(result) + "\n").encode())


def main() -> None:
    print("ready", flush=True)
    for line in sys.stdin:
        command = json.loads(line)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            try:
                child(command, write_end)
            finally:
                os._exit(0)
        os.close(write_end)
        deadline = time.monotonic() + command["hard_limit"]
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.02)
        else:
            with os.fdopen(read_end) as fh:
                print(fh.read().strip() or json.dumps({"raw": "the child printed nothing"}), flush=True)
            continue
        os.close(read_end)
        print(json.dumps({"killed": True}), flush=True)


if __name__ == "__main__":
    main()
