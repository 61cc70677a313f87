"""Shared pieces of the reliability suite: the malformed-input corpus, a CLI runner that
lets real exceptions through, and the hypothesis budgets of the fast and slow runs."""
from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from typer.testing import CliRunner, Result

from spacy_sparse_expert.cli.main import app

MALFORMED = Path(__file__).parent.parent / "fixtures" / "malformed"

# Fast runs are derandomized (the same examples every time, as CI needs); --slow runs
# draw new examples on every run, which is what fuzzing is for. No example database is
# written into the repository.
_COMMON = {"deadline": None, "database": None,
           "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                     HealthCheck.data_too_large]}
FAST = settings(max_examples=40, derandomize=True, **_COMMON)
SLOW = settings(max_examples=2000, **_COMMON)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread; on a shared machine with busy cores, two
    OpenMP threads spin-waiting on each other made these tests up to 50x slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich wraps at 80 columns under CliRunner; long tmp paths must stay on one line."""
    monkeypatch.setenv("COLUMNS", "400")


def run_cli(*args: object) -> Result:
    """Invoke `sparse-expert ARGS`; an exception that escapes the command fails the test
    (CliRunner would otherwise swallow it into `result.exception`)."""
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def assert_clean_failure(result: Result, code: str, *must_contain: str) -> str:
    """Exit status 1, the coded message, no traceback. RETURNS the output, one line."""
    output = " ".join((result.output or "").split())
    assert result.exit_code == 1, output
    assert "Traceback" not in output, output
    assert f"[SSE-{code}]" in output, output
    for text in must_contain:
        assert text in output, f"{text!r} not in {output!r}"
    return output


def error_code(message: str) -> str:
    found = re.search(r"\[SSE-(E\d{3})\]", message)
    assert found, f"no error code in {message!r}"
    return found.group(1)
