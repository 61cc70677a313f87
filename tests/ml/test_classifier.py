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


def _tiny_classifier(**kwargs):
    from spacy_sparse_expert.ml.torch.classifier import MoEDocClassifier

    torch.manual_seed(0)
    enc = HashEncoder(50, 8, depth=0)
    return MoEDocClassifier(enc, width=8, n_labels=3, n_experts=2, k=1, d_ff=8, bow_rows=16,
                            n_knowledge_ids=6, d_knowledge=4, dropout=0.0, **kwargs)


def _tiny_inputs(know_ids=(1, 1, 4)):
    """Two docs of 3 and 2 tokens; the knowledge ids sit on tokens 0 and 3 (doc 0 and 1)."""
    know_ids = torch.tensor(know_ids, dtype=torch.long)
    know_offsets = torch.tensor([0, 2, 2, 2, 3]) if len(know_ids) else torch.zeros(5, dtype=torch.long)
    return dict(
        enc={"hash_ids": torch.randint(0, 50, (5, 2)), "packed_pos": torch.tensor([1, 2, 3, 5, 6]), "n_packed": 8},
        doc_index=torch.tensor([0, 0, 0, 1, 1]), n_docs=2,
        bow_ids=torch.tensor([0, 3, 5, 3, 9]), bow_offsets=torch.tensor([0, 3]), bow_weights=torch.ones(5),
        know_ids=know_ids, know_offsets=know_offsets, know_dense=torch.zeros(5, 0),
        expert_bias=torch.zeros(5, 2), label_bias=torch.zeros(2, 3),
    )


def _scores(out):
    # the module returns logits; the component reads them with a softmax (exclusive)
    return torch.softmax(out.logits, dim=-1)


def _logits(clf, inputs):
    # log-softmax: the logits up to a per-doc constant
    return torch.log(_scores(clf(**inputs)))


def test_bow_scale_multiplies_the_linear_path():
    inputs = _tiny_inputs()
    a, b = _tiny_classifier(bow_scale=1.0).eval(), _tiny_classifier(bow_scale=10.0).eval()
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        a.bow.weight.normal_()
        b.bow.weight.copy_(a.bow.weight / 10.0)
    assert torch.allclose(_logits(a, inputs), _logits(b, inputs), atol=1e-5)
    # under Adam the stored weights move at the learning rate, so the path moves 10x faster
    grads = []
    for clf in (a, b):
        clf.zero_grad()
        clf(**inputs).logits.sum().backward()
        grads.append(clf.bow.weight.grad.abs().sum())
    assert torch.allclose(grads[1], 10 * grads[0], rtol=1e-4)


def test_path_dropout_only_in_training_and_per_document():
    inputs = _tiny_inputs()
    clf = _tiny_classifier(path_dropout=0.5)
    plain = _tiny_classifier()
    plain.load_state_dict(clf.state_dict())
    clf.eval(), plain.eval()
    assert torch.allclose(_scores(clf(**inputs)), _scores(plain(**inputs)))
    clf.train()
    torch.manual_seed(3)
    # bow weights are zero at init: a dropped document scores exactly uniform
    seen = set()
    for _ in range(40):
        scores = _scores(clf(**inputs))
        seen.update(tuple(bool(torch.allclose(row, torch.full((3,), 1 / 3))) for row in scores))
    assert seen == {True, False}


def test_knowledge_bag_counts_each_docs_ids():
    clf = _tiny_classifier(knowledge_bow=True).eval()
    inputs = _tiny_inputs()
    assert torch.allclose(_scores(clf(**inputs)), _scores(_tiny_classifier().eval()(**inputs)))  # zero at init
    with torch.no_grad():
        clf.know_bow.copy_(torch.arange(18, dtype=torch.float32).reshape(6, 3))
    bag = clf._knowledge_bag(inputs["know_ids"], inputs["know_offsets"], inputs["doc_index"], 2)
    # doc 0 holds id 1 twice (weight 1 + log 2, normalised to 1); doc 1 holds id 4 once
    assert torch.allclose(bag[0], clf.know_bow[1]) and torch.allclose(bag[1], clf.know_bow[4])
    no_knowledge = _tiny_inputs(know_ids=())
    assert torch.allclose(_scores(clf(**no_knowledge)), _scores(_tiny_classifier().eval()(**no_knowledge)))
