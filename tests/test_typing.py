"""Type information for users: the package ships `py.typed`, and mypy checks the public
API in CI (`make test` runs `make typecheck`, settings in pyproject.toml [tool.mypy]).
The run itself takes a minute or two, so here it is behind --slow; these fast checks make
sure it keeps covering what users import."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - mypy, a dev dependency, brings tomli on Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf8"))
CHECKED = set(PYPROJECT["tool"]["mypy"]["files"])


def module_file(module: str) -> str:
    """`spacy_sparse_expert.kb.loaders` -> `spacy_sparse_expert/kb/loaders.py`."""
    path = ROOT / module.replace(".", "/")
    return str((path / "__init__.py" if path.is_dir() else path.with_suffix(".py")).relative_to(ROOT))


def test_py_typed_is_shipped() -> None:
    assert (resources.files("spacy_sparse_expert") / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["spacy_sparse_expert"]


def test_every_checked_file_exists() -> None:
    missing = sorted(path for path in CHECKED if not (ROOT / path).is_file())
    assert not missing, f"[tool.mypy] files names modules that do not exist: {missing}"


def test_entry_points_and_public_names_are_type_checked() -> None:
    """Whatever spaCy loads by entry point, and the package's lazily imported public
    names, come from modules mypy checks."""
    targets = [target for group in PYPROJECT["project"]["entry-points"].values() for target in group.values()]
    modules = {target.split(":")[0] for target in targets}
    import spacy_sparse_expert

    modules |= set(spacy_sparse_expert._LAZY.values())
    modules.add("spacy_sparse_expert")
    unchecked = sorted(module for module in modules if module_file(module) not in CHECKED)
    assert not unchecked, f"add these to [tool.mypy] files in pyproject.toml: {unchecked}"


def test_make_test_runs_the_type_checker() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf8")
    test_deps = re.search(r"^test:(.*)$", makefile, re.M)
    assert test_deps is not None and "typecheck" in test_deps.group(1).split()
    recipe = re.search(r"^typecheck:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe is not None and "-m mypy" in recipe.group(1)
    assert any(dep.startswith("mypy") for dep in PYPROJECT["project"]["optional-dependencies"]["dev"])


@pytest.mark.slow
def test_mypy_accepts_the_public_api() -> None:
    if shutil.which("mypy") is None and subprocess.run([sys.executable, "-m", "mypy", "--version"],
                                                       capture_output=True, check=False).returncode != 0:
        pytest.skip("mypy is not installed (pip install -e '.[dev]')")
    proc = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True,
                          timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
