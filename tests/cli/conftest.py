from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rich wraps CLI output at the terminal width (80 under CliRunner); a long tmp path
    must not split the phrases the tests look for, so give every CLI test a wide console."""
    monkeypatch.setenv("COLUMNS", "400")
