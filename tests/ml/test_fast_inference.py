"""The fast inference paths give what the plain ones gave: the window encoder's depthwise
step on shifted rows against torch's grouped Conv1d (values and gradients, and the whole
encoder on BBC News documents), and the classifier shim's predict against thinc's."""
from __future__ import annotations

from typing import List

import numpy as np
import pytest
import spacy
import torch
import torch.nn.functional as F
from thinc.api import ArgsKwargs, PyTorchShim

from spacy_sparse_expert.data.bbc import bbc_split
from spacy_sparse_expert.ml.architectures import torch_module
from spacy_sparse_expert.ml.featurize import HashFeaturizer
from spacy_sparse_expert.ml.inputs import build_inputs, to_torch
from spacy_sparse_expert.ml.torch.encoder import HashEncoder, WindowBlock, depthwise_window
from spacy_sparse_expert.ml.wrapper import ClassifierShim

from spacy_sparse_expert.kb.loaders import load_kb_v1
from spacy_sparse_expert.rules.loaders import load_rules_v1

from ..pipeline.conftest import kb_dir, make_examples, make_nlp, rules_path, tiny_model  # noqa: F401 (fixture)


@pytest.fixture(scope="module")
def bbc_texts() -> List[str]:
    return [r["text"] for r in bbc_split()["test"][:12]]


@pytest.mark.parametrize("window", [1, 2])
@pytest.mark.parametrize("n_rows", [1, 2, 3, 7, 50])
def test_depthwise_window_equals_grouped_conv(window: int, n_rows: int) -> None:
    torch.manual_seed(n_rows)
    conv = torch.nn.Conv1d(6, 6, 2 * window + 1, padding=window, groups=6)
    x = torch.randn(n_rows, 6, requires_grad=True)
    want = conv(x.t().unsqueeze(0)).squeeze(0).t()
    got = depthwise_window(x, conv.weight, conv.bias)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)
    # the same gradients for the input and both parameters
    g = torch.randn(n_rows, 6)
    grads_want = torch.autograd.grad((want * g).sum(), [x, conv.weight, conv.bias])
    grads_got = torch.autograd.grad((got * g).sum(), [x, conv.weight, conv.bias])
    for a, b in zip(grads_got, grads_want):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def _conv_block(block: WindowBlock, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """WindowBlock.forward as it was: torch's grouped convolution on (1, width, P)."""
    h = block.depthwise(x.t().unsqueeze(0)).squeeze(0).t()
    h = block.down(F.gelu(block.up(h)))
    return block.norm(x + block.dropout(h)) * keep


def test_hash_encoder_equals_the_conv_encoder_on_bbc_docs(bbc_texts: List[str]) -> None:
    nlp = spacy.blank("en")
    docs = [nlp.make_doc(t) for t in ["", *bbc_texts, "One.", ""]]
    feats = HashFeaturizer(["NORM", "PREFIX", "SUFFIX", "SHAPE"], [500, 200, 200, 200], window=1)(docs)
    torch.manual_seed(0)
    enc = HashEncoder(1100, 16, window=1, depth=2, d_hidden=32, dropout=0.0).eval()
    inputs = to_torch(feats, torch.device("cpu"))
    with torch.inference_mode():
        got = enc(**inputs)
        x = enc.embed_norm(enc.embed(inputs["hash_ids"]))
        packed = x.new_zeros(inputs["n_packed"], 16).index_copy(0, inputs["packed_pos"], x)
        keep = x.new_zeros(inputs["n_packed"], 1).index_fill(0, inputs["packed_pos"], 1.0)
        for block in enc.blocks:
            packed = _conv_block(block, packed, keep)
        want = packed.index_select(0, inputs["packed_pos"])
    assert got.shape == (sum(len(d) for d in docs), 16)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("depth", [1, 2])
def test_the_last_window_block_leaves_its_gaps_unmasked(bbc_texts: List[str], depth: int) -> None:
    """The gap rows after the last block are never read, so that block skips zeroing
    them: the token rows, and every gradient, are exactly those of masking after every
    block."""
    nlp = spacy.blank("en")
    docs = [nlp.make_doc(t) for t in ["", *bbc_texts[:6], "One.", ""]]
    inputs = to_torch(HashFeaturizer(["NORM", "SHAPE"], [300, 50], window=1)(docs), torch.device("cpu"))
    torch.manual_seed(0)
    enc = HashEncoder(350, 16, window=1, depth=depth, d_hidden=32, dropout=0.0)

    def masked_every_block() -> torch.Tensor:
        x = enc.embed_norm(enc.embed(inputs["hash_ids"]))
        packed = x.new_zeros(inputs["n_packed"], 16).index_copy(0, inputs["packed_pos"], x)
        keep = x.new_zeros(inputs["n_packed"], 1).index_fill(0, inputs["packed_pos"], 1.0)
        for block in enc.blocks:
            packed = block(packed, keep)
        return packed.index_select(0, inputs["packed_pos"])

    g = torch.randn(int(inputs["packed_pos"].shape[0]), 16, generator=torch.Generator().manual_seed(1))
    got, want = enc(**inputs), masked_every_block()
    assert torch.equal(got, want)
    grads_got = torch.autograd.grad((got * g).sum(), list(enc.parameters()))
    grads_want = torch.autograd.grad((want * g).sum(), list(enc.parameters()))
    for a, b in zip(grads_got, grads_want):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_classifier_shim_predicts_what_thincs_shim_predicts(kb_dir, bbc_texts: List[str]) -> None:
    """Same cats as thinc's PyTorchShim.predict (which toggles eval()/train() around the
    forward), and the module's training flags end as thinc leaves them. With dropout, a
    forward in training mode would differ from run to run."""
    nlp = make_nlp(model=tiny_model(True, dropout=0.3))
    textcat = nlp.get_pipe("textcat")
    examples = make_examples(nlp)
    textcat.initialize(lambda: examples, nlp=nlp, kb_loader=load_kb_v1(str(kb_dir)),
                       rules_loader=load_rules_v1(str(rules_path())))
    for eg in examples[:2]:  # a few updates, so the cats depend on every weight
        nlp.update([eg])
    shim = textcat.model.layers[0].shims[0]
    assert isinstance(shim, ClassifierShim)
    docs = [nlp.make_doc(t) for t in bbc_texts + ["", "Chelsea won."]]
    inputs = ArgsKwargs(args=(), kwargs=to_torch(build_inputs(textcat.model, docs), torch.device("cpu")))
    module = torch_module(textcat.model)
    got = shim.predict(inputs)
    assert all(m.training for m in module.modules())
    torch.testing.assert_close(shim.predict(inputs).logits, got.logits, rtol=0, atol=0)
    want = PyTorchShim.predict(shim, inputs)  # thinc's own predict on the same shim
    torch.testing.assert_close(got.logits, want.logits, rtol=0, atol=1e-6)
    scores = np.array([[d.cats[label] for label in textcat.labels] for d in nlp.pipe(t.text for t in docs)])
    want_scores = torch.softmax(want.logits, dim=1).numpy()
    np.testing.assert_allclose(scores, want_scores, rtol=0, atol=1e-5)
