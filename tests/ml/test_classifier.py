"""The pure-torch pieces of the classifier: pooling by segment, the packed encoder,
and the safetensors round trip of the thinc wrapper."""
from __future__ import annotations

import torch

from spacy_sparse_expert.ml.torch.encoder import HashEncoder
from spacy_sparse_expert.ml.torch.pooling import AttentionPool, segment_max, segment_mean, segment_softmax
from spacy_sparse_expert.ml.wrapper import state_from_bytes, state_to_bytes


def test_segment_ops_match_a_loop():
    torch.manual_seed(0)
    x = torch.randn(7, 3)
    index = torch.tensor([0, 0, 0, 2, 2, 3, 3])
    mean, top = segment_mean(x, index, 4), segment_max(x, index, 4)
    for d, rows in [(0, [0, 1, 2]), (2, [3, 4]), (3, [5, 6])]:
        assert torch.allclose(mean[d], x[rows].mean(0))
        assert torch.allclose(top[d], x[rows].max(0).values)
    assert (mean[1] == 0).all() and (top[1] == 0).all()  # empty doc
    soft = segment_softmax(x[:, 0], index, 4)
    assert torch.allclose(soft[:3], torch.softmax(x[:3, 0], 0))


def test_attention_pool_starts_as_mean():
    x = torch.randn(5, 4)
    index = torch.tensor([0, 0, 1, 1, 1])
    pooled = AttentionPool(4)(x, index, 2)
    assert torch.allclose(pooled[:, :4], pooled[:, 4:], atol=1e-6)


def test_packed_encoder_does_not_mix_documents():
    torch.manual_seed(0)
    enc = HashEncoder(50, 8, window=1, depth=2, d_hidden=8, dropout=0.0).eval()
    a = torch.randint(0, 50, (3, 2))
    b1, b2 = torch.randint(0, 50, (4, 2)), torch.randint(0, 50, (4, 2))
    # packed: gap, a (3), gap, b (4), gap
    pos = torch.tensor([1, 2, 3, 5, 6, 7, 8])
    out1 = enc(torch.cat([a, b1]), pos, 10)
    out2 = enc(torch.cat([a, b2]), pos, 10)
    assert torch.allclose(out1[:3], out2[:3], atol=1e-6)
    alone = enc(a, torch.tensor([1, 2, 3]), 5)
    assert torch.allclose(out1[:3], alone, atol=1e-6)


def test_safetensors_round_trip():
    torch.manual_seed(0)
    a = HashEncoder(50, 8, depth=1, d_hidden=8)
    b = HashEncoder(50, 8, depth=1, d_hidden=8)
    data = state_to_bytes(a)
    assert data[:8] != b"PK\x03\x04\x00\x00\x08\x08"  # not a torch zip / pickle
    state_from_bytes(b, data)
    for (_, p), (_, q) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(p, q)


def test_bow_weights_are_tfidf_l2_normalised():
    from spacy_sparse_expert.ml.torch.classifier import MoEDocClassifier

    enc = HashEncoder(50, 8, depth=0)
    clf = MoEDocClassifier(enc, width=8, n_labels=2, n_experts=2, k=1, d_ff=8, bow_rows=10)
    clf.set_bow_idf(torch.tensor([0.0, 4.0] + [1.0] * 8), n_docs=4)
    ids, offsets = torch.tensor([0, 1, 1, 2]), torch.tensor([0, 2, 2])
    w = clf._bow_weights(ids, offsets, torch.ones(4), 3)
    assert w[0] > w[1]  # the rarer n-gram weighs more
    assert torch.allclose(w[:2].norm(), torch.tensor(1.0)) and torch.allclose(w[2:].norm(), torch.tensor(1.0))
