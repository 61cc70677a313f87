"""The package imports and works where POSIX-only pieces are missing, as on Windows:
no `fcntl` module, no `os.register_at_fork`, and `ctypes.CDLL(None)` raising TypeError
(what Windows' ctypes does with no library name). Each check runs in a fresh interpreter
whose first lines take those away before anything of ours is imported.

And what `spacy package` makes of a pipeline: the requirements in the package's meta.json,
and what a loaded pipeline imports.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"

# Taken away before anything else runs: `sys.modules[name] = None` makes `import fcntl`
# raise ImportError, exactly as on Windows, which has neither os.fork nor its hooks.
WITHOUT_POSIX = """\
import ctypes, os, sys
sys.modules.pop("fcntl", None)
sys.modules["fcntl"] = None
del os.register_at_fork, os.fork  # the standard library registers its hooks only `if hasattr(os, "fork")`
_cdll = ctypes.CDLL
class _NoSelfCDLL(_cdll):
    def __init__(self, name, *args, **kwargs):
        if name is None:
            raise TypeError("expected str, bytes or os.PathLike object, not NoneType")
        super().__init__(name, *args, **kwargs)
ctypes.CDLL = _NoSelfCDLL
"""


def run_without_posix(code: str, *args: str, preload: str = "") -> dict:
    """Run `code` after WITHOUT_POSIX (and `preload` before it); it prints one JSON
    line, returned parsed."""
    proc = subprocess.run([sys.executable, "-c", preload + WITHOUT_POSIX + code, *args], capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_the_stand_ins_really_take_the_posix_pieces_away() -> None:
    got = run_without_posix(
        "import ctypes, json, os\n"
        "try:\n    import fcntl\n    fcntl_ok = True\nexcept ImportError:\n    fcntl_ok = False\n"
        "try:\n    ctypes.CDLL(None)\n    cdll_ok = True\nexcept TypeError:\n    cdll_ok = False\n"
        "print(json.dumps({'fcntl': fcntl_ok, 'fork_hook': hasattr(os, 'register_at_fork'), 'cdll': cdll_ok}))\n")
    assert got == {"fcntl": False, "fork_hook": False, "cdll": False}


def test_kb_import_replace_and_load_without_posix_pieces(tmp_path: Path) -> None:
    """Import a KB twice into one directory (the second replaces the first without
    RENAME_EXCHANGE, under the lock), load it, look an alias up; no lock file is left."""
    out = tmp_path / "kb"
    got = run_without_posix(
        "import json, sys\n"
        "from pathlib import Path\n"
        "import spacy_sparse_expert\n"
        "from spacy_sparse_expert.kb import storage\n"
        "from spacy_sparse_expert.kb.compile import import_rdf\n"
        "from spacy_sparse_expert.kb.knowledge_base import KnowledgeBase\n"
        "out = Path(sys.argv[1])\n"
        "import_rdf([Path(sys.argv[2])], out)\n"
        "import_rdf([Path(sys.argv[3])], out)\n"
        "kb = KnowledgeBase.from_disk(out)\n"
        "print(json.dumps({'exchange': storage.exchange(out, out), 'entities': kb.n_entities,\n"
        "                  'uk': [c.label for c in kb.candidates('britain')],\n"
        "                  'beside': sorted(p.name for p in out.parent.iterdir())}))\n",
        str(out), str(FIXTURES / "kb_small.ttl"), str(FIXTURES / "kb_small.nt"),
        # the import stores the aliases tokenized by spaCy's blank English tokenizer, and
        # spaCy imports torch, whose fork hooks on Linux are not ours to test (see below)
        preload="import torch\n")
    assert got["exchange"] is False  # the portable two-rename swap was the one used
    assert got["entities"] == 10
    assert got["uk"] == ["United Kingdom"]
    assert got["beside"] == ["kb"]  # no .kb.lock, no temporary directory


def test_pipeline_modules_import_and_run_without_posix_pieces() -> None:
    """The torch wrapper (which registers a fork hook where there is fork) imports, and
    the component classifies a doc. torch is imported first: on Linux torch registers its
    own fork hooks (on Windows it takes another path), and those are not ours to test."""
    got = run_without_posix(
        "import json\n"
        "import spacy\n"
        "import spacy_sparse_expert.ml.wrapper\n"
        "from spacy_sparse_expert.pipeline.textcat import SparseExpertTextCategorizer\n"
        "from spacy.training import Example\n"
        "nlp = spacy.blank('en')\n"
        "nlp.add_pipe('sparse_expert_textcat')\n"
        "texts = [('Chelsea won the match.', 'sport'), ('Shares fell sharply.', 'business')]\n"
        "examples = [Example.from_dict(nlp.make_doc(t), {'cats': {'sport': float(l == 'sport'),\n"
        "                                                          'business': float(l == 'business')}})\n"
        "            for t, l in texts]\n"
        "nlp.initialize(lambda: examples)\n"
        "doc = nlp('Chelsea won again.')\n"
        "print(json.dumps({'cats': sorted(doc.cats)}))\n", preload="import torch\n")
    assert got == {"cats": ["business", "sport"]}



def test_the_lock_file_is_never_followed_through_a_symlink(tmp_path: Path) -> None:
    """filelock replaced our own O_NOFOLLOW flock: a link planted as the lock file still
    fails the import and leaves its target as it was."""
    from spacy_sparse_expert.kb import storage

    victim = tmp_path / "victim.txt"
    victim.write_text("precious", encoding="utf8")
    (tmp_path / ".kb.lock").symlink_to(victim)
    with pytest.raises(OSError):
        with storage.import_lock(tmp_path / "kb"):
            pass
    assert victim.read_text(encoding="utf8") == "precious"


# --- `spacy package`: what a packaged pipeline requires ---------------------------------


def _saved_pipeline(path: Path) -> Path:
    """A tiny sparse_expert_textcat pipeline with the component KB, saved to `path`."""
    import spacy
    from spacy.training import Example

    from spacy_sparse_expert.kb.compile import compile_kb
    from spacy_sparse_expert.kb.loaders import load_kb_v1
    from tests.pipeline.conftest import tiny_model

    compile_kb([FIXTURES / "component_kb.ttl"]).to_disk(path.parent / "kb")
    nlp = spacy.blank("en")
    textcat = nlp.add_pipe("sparse_expert_textcat", config={"model": tiny_model(True)})
    examples = [Example.from_dict(nlp.make_doc(text), {"cats": {"sport": float(label == "sport"),
                                                                "business": float(label == "business")}})
                for text, label in [("Chelsea won the match.", "sport"), ("Vodafone shares fell.", "business")]]
    textcat.initialize(lambda: examples, nlp=nlp, kb_loader=load_kb_v1(str(path.parent / "kb")))
    nlp.to_disk(path)
    return path


def _packaged_requirements(pipeline: Path, out: Path, meta: dict | None = None) -> list[str]:
    """The requirements `spacy package` writes into the package's meta.json (and setup.py
    reads as install_requires)."""
    from spacy.cli.package import package

    meta_path = None
    if meta is not None:
        meta_path = out.parent / "meta_in.json"
        meta_path.write_text(json.dumps(meta), encoding="utf8")
    out.mkdir()
    package(pipeline, out, meta_path=meta_path, name="sse_test", version="0.0.1", create_sdist=False, force=True)
    metas = list(out.glob("*/meta.json"))
    assert len(metas) == 1, metas
    return json.loads(metas[0].read_text(encoding="utf8"))["requirements"]


def test_spacy_package_requires_only_this_package(tmp_path: Path) -> None:
    """A packaged pipeline needs spacy-sparse-expert and what it depends on, nothing more:
    not torch's CUDA build by name (torch comes through our own dependency, so a CPU wheel
    installed first satisfies it; README "Packaging a pipeline")."""
    from importlib.metadata import version

    pipeline = _saved_pipeline(tmp_path / "pipeline")
    ours = version("spacy-sparse-expert")
    major, minor = ours.split(".")[:2]
    assert _packaged_requirements(pipeline, tmp_path / "plain") == [
        f"spacy-sparse-expert>={ours},<{major}.{int(minor) + 1}.0"]


def test_spacy_package_keeps_an_extra_given_in_meta(tmp_path: Path) -> None:
    """A pipeline with the transformer encoder also needs the `transformers` extra, which
    spaCy cannot see in the config (the architecture is ours): the README's recipe is a
    meta.json whose requirement names the extra, and spaCy then adds no second one."""
    pipeline = _saved_pipeline(tmp_path / "pipeline")
    wanted = "spacy-sparse-expert[transformers]>=0.1.0,<0.2.0"
    assert _packaged_requirements(pipeline, tmp_path / "extra", meta={"requirements": [wanted]}) == [wanted]


def test_a_loaded_pipeline_imports_no_rdf_parser(tmp_path: Path) -> None:
    """Loading and running a saved pipeline needs none of the RDF import stack (rdflib,
    pyoxigraph): the KB travels compiled in the pipeline, and the doc is linked with it."""
    pipeline = _saved_pipeline(tmp_path / "pipeline")
    code = ("import json, sys, spacy\n"
            "nlp = spacy.load(sys.argv[1])\n"
            "doc = nlp('Chelsea won again.')\n"
            "print(json.dumps([sorted(m for m in ('rdflib', 'pyoxigraph') if m in sys.modules),\n"
            "                  [s.kb_id_ for s in doc.spans['kb_entities']]]))\n")
    proc = subprocess.run([sys.executable, "-c", code, str(pipeline)], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [[], ["http://example.org/ChelseaFC"]]
