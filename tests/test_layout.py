"""The package layout shows the data flow: no import cycle, no import from a folder
above a module's own (except the base modules), the RDF -> KB flow (kb/) independent of
the text -> features flow, and `kb` commands that never load spaCy or torch.

Imports are read with `ast` from the source, every one of them (module level and inside
functions, which still run), except those under `if TYPE_CHECKING:`.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

PKG = "spacy_sparse_expert"
ROOT = Path(__file__).resolve().parent.parent / PKG
FIXTURES = Path(__file__).resolve().parent / "fixtures"

# Modules at the package root that any folder may import: coded errors, the registries,
# and the one JSONL reader (rule files, training data and distillation input share it).
BASE_MODULES = {f"{PKG}.errors", f"{PKG}.registry", f"{PKG}.jsonl"}

# folder -> folders it must not import from (each flow depends only on what comes before it)
FORBIDDEN = {
    "kb": {"rules", "features", "ml", "pipeline", "distill", "cli", "data"},
    "rules": {"kb", "features", "ml", "pipeline", "distill", "cli", "data"},
    "features": {"ml", "pipeline", "distill", "cli", "data"},
    "data": {"kb", "rules", "features", "ml", "pipeline", "distill", "cli"},
    "ml": {"pipeline", "distill", "cli"},
    "pipeline": {"distill", "cli"},
    "distill": {"cli"},
}
HEAVY = ("torch", "spacy", "thinc")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(ROOT.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _walk(node: ast.AST, top: bool):
    """(import node, at module level) for every import not under `if TYPE_CHECKING:`."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            for sub in child.orelse:
                yield from _walk(sub, top)
            continue
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child, top
        inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield from _walk(child, inner)


def imports_of(name: str) -> list[tuple[str, bool]]:
    """(imported module, at module level) for module `name`; names imported from a
    package resolve to its submodule where there is one (`from . import storage`)."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[tuple[str, bool]] = []
    for node, top in _walk(ast.parse(path.read_text(encoding="utf8")), True):
        if isinstance(node, ast.Import):
            out.extend((alias.name, top) for alias in node.names)
            continue
        if node.level:
            base = package.split(".")[: len(package.split(".")) - node.level + 1]
            target = ".".join(base + ([node.module] if node.module else []))
        else:
            target = node.module or ""
        subs = [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in MODULES]
        out.extend((sub, top) for sub in subs)
        if len(subs) < len(node.names):
            out.append((target, top))
    return out


def own_imports() -> dict[str, set[str]]:
    return {name: {t for t, _ in imports_of(name) if t.startswith(PKG) and t in MODULES and t != name}
            for name in MODULES}


def folder(name: str) -> str:
    """The package a module lives in ('spacy_sparse_expert.kb' for kb/compile.py)."""
    return name if MODULES[name].name == "__init__.py" else name.rpartition(".")[0]


def top_folder(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and MODULES[name].name == "__init__.py") else ""


def test_the_source_tree_was_found() -> None:
    assert {f"{PKG}.kb.compile", f"{PKG}.rules.rules", f"{PKG}.features.features", f"{PKG}.cli.main"} <= set(MODULES)


def test_no_import_cycle() -> None:
    graph = own_imports()
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as err:
        pytest.fail(f"import cycle: {' -> '.join(err.args[1])}")


def test_cycle_detection_sees_function_level_imports(tmp_path: Path) -> None:
    # the checker itself: an import inside a function is an arrow too
    tree = ast.parse("import os\ndef f():\n    from .b import x\nif TYPE_CHECKING:\n    from .c import y\n")
    found = [(type(n).__name__, top) for n, top in _walk(tree, True)]
    assert found == [("Import", True), ("ImportFrom", False)]


def test_no_upward_imports() -> None:
    bad = []
    for name, targets in own_imports().items():
        here = folder(name)
        for target in targets:
            there = folder(target)
            above = there != here and here.startswith(there + ".")
            if above and target not in BASE_MODULES:
                bad.append(f"{name} -> {target}")
    assert not bad, "imports from a folder above the module's own: " + ", ".join(bad)


@pytest.mark.parametrize("source", sorted(FORBIDDEN))
def test_folders_follow_the_flow(source: str) -> None:
    bad = [f"{name} -> {target}" for name, targets in own_imports().items() if top_folder(name) == source
           for target in targets if top_folder(target) in FORBIDDEN[source]]
    assert not bad, f"{source}/ imports what comes after it in the flow: " + ", ".join(bad)


@pytest.mark.parametrize("source", ["kb", "rules"])
def test_kb_and_rules_do_not_import_spacy_or_torch_at_module_level(source: str) -> None:
    bad = [f"{name} -> {target}" for name in MODULES if top_folder(name) == source
           for target, top in imports_of(name) if top and target.split(".")[0] in HEAVY]
    assert not bad, bad


def test_package_root_imports_nothing_heavy() -> None:
    targets = [t for t, top in imports_of(PKG) if top]
    assert not [t for t in targets if t.startswith(PKG) or t.split(".")[0] in HEAVY], targets


def loaded_after(code: str, *args: str) -> dict:
    """Run `code` (then argv `args`) in a fresh interpreter; report which heavy modules
    ended up in sys.modules and the exit status of the code."""
    script = (
        "import json, sys\n"
        "status = 0\n"
        "try:\n"
        + "".join(f"    {line}\n" for line in code.splitlines())
        + "except SystemExit as e:\n"
        "    status = e.code if isinstance(e.code, int) else 1\n"
        f"print('\\n' + json.dumps({{'status': status, 'loaded': sorted(m for m in {HEAVY!r} if m in sys.modules)}}))\n"
    )
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


CLI = "sys.argv = ['sparse-expert', *sys.argv[1:]]\nfrom spacy_sparse_expert.cli.main import app\napp()"


def test_importing_the_package_and_kb_compile_loads_neither_spacy_nor_torch() -> None:
    got = loaded_after("import spacy_sparse_expert\nimport spacy_sparse_expert.kb.compile\n"
                       "import spacy_sparse_expert.kb.knowledge_base\nimport spacy_sparse_expert.kb.loaders")
    assert got == {"status": 0, "loaded": []}


def test_package_attributes_load_on_first_use() -> None:
    got = loaded_after("import spacy_sparse_expert as p\nassert p.KnowledgeBase.__name__ == 'KnowledgeBase'\n"
                       "assert p.__version__\nassert 'SparseExpertTextCategorizer' in dir(p)")
    assert got == {"status": 0, "loaded": []}
    got = loaded_after("import spacy_sparse_expert as p\nassert p.SparseExpertTextCategorizer.__name__")
    assert got["status"] == 0 and "spacy" in got["loaded"]


def test_kb_commands_load_neither_spacy_nor_torch(tmp_path: Path) -> None:
    out = tmp_path / "kb"
    steps = [
        ("--help",),
        # without the alias index, which tokenizes the aliases with spaCy (tests/kb/test_mmap.py)
        ("kb", "import", str(FIXTURES / "kb_small.ttl"), "-o", str(out), "--alias-index", "none"),
        ("kb", "info", str(out)),
        ("kb", "info", str(out), "--json"),
        ("kb", "lookup", str(out), "Alice"),
    ]
    for argv in steps:
        got = loaded_after(CLI, *argv)
        assert got == {"status": 0, "loaded": []}, (argv, got)
    assert (out / "meta.json").is_file()


def test_a_failing_kb_command_loads_neither_spacy_nor_torch(tmp_path: Path) -> None:
    got = loaded_after(CLI, "kb", "import", str(FIXTURES / "kb_bad_syntax.ttl"), "-o", str(tmp_path / "kb"))
    assert got["status"] == 1 and got["loaded"] == []
