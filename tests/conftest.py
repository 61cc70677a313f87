from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).parent.parent


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", default=False, help="run slow tests")
    parser.addoption("--gpu", action="store_true", default=False, help="run GPU tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    skip_slow = pytest.mark.skip(reason="slow test: pass --slow to run")
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except ImportError:  # pragma: no cover
        has_gpu = False
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "slow" in item.keywords and not config.getoption("--slow"):
            item.add_marker(skip_slow)
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture()
def opened_files() -> Iterator[list[str]]:
    """Paths opened by Python code while the test runs (audit hooks cannot be removed,
    so the hook records only while the test is active)."""
    seen: list[str] = []
    state = {"active": True}

    def hook(event: str, args: tuple) -> None:
        if state["active"] and event == "open" and args and isinstance(args[0], (str, bytes)):
            seen.append(str(args[0]))

    sys.addaudithook(hook)
    yield seen
    state["active"] = False


@pytest.fixture(scope="session")
def shipped_kb_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """knowledge/fb15k237.nt.gz compiled once per session (~33k aliases). Shared: copy the
    folder before changing it (a linker built on it writes its alias index there)."""
    from spacy_sparse_expert.kb.compile import import_rdf

    src = REPO / "knowledge" / "fb15k237.nt.gz"
    if not src.is_file():  # pragma: no cover - the shipped graph is committed
        pytest.skip("knowledge/fb15k237.nt.gz is missing")
    out = tmp_path_factory.mktemp("shipped_kb") / "fb15k237"
    import_rdf([src], out)
    return out
