"""The knowledge gate (``knowledge_gate``) and knowledge dropout of the MoE classifier:
knowledge starts switched off, opens when it predicts the labels, stays shut when it is
noise, and the gate is saved and loaded with the model."""
from __future__ import annotations

import math

import pytest
import spacy
import torch
from spacy.training import Example

from spacy_sparse_expert.ml.architectures import torch_module
from spacy_sparse_expert.ml.settings import ModelSettingError
from spacy_sparse_expert.ml.torch.classifier import MoEDocClassifier
from spacy_sparse_expert.ml.torch.encoder import HashEncoder
from spacy_sparse_expert.ml.weights import WeightsFileError
from spacy_sparse_expert.ml.wrapper import state_from_bytes, state_to_bytes

N_LABELS, N_EXPERTS, N_IDS, TOKENS = 3, 4, 30, 12
VOCAB, TOPIC = 40, 5  # words 0..14: five topic words per label; the rest shared


def _make_docs(n_docs: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(n_docs, TOKENS) word ids and (n_docs,) labels. Each doc has two topic words of
    its label, one of a random label and nine shared words; 10% of the labels are
    flipped, so held-out accuracy stays below 1 and a harmful input can show."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, N_LABELS, (n_docs,), generator=g)
    own = labels[:, None] * TOPIC + torch.randint(0, TOPIC, (n_docs, 2), generator=g)
    other = torch.randint(0, N_LABELS * TOPIC, (n_docs, 1), generator=g)
    shared = torch.randint(N_LABELS * TOPIC, VOCAB, (n_docs, TOKENS - 3), generator=g)
    words = torch.cat([own, other, shared], dim=1)
    words = torch.gather(words, 1, torch.argsort(torch.rand(words.shape, generator=g), dim=1))
    flip = torch.rand(n_docs, generator=g) < 0.1
    labels = torch.where(flip, torch.randint(0, N_LABELS, (n_docs,), generator=g), labels)
    return words, labels


def _inputs(words: torch.Tensor, labels: torch.Tensor, knowledge: str, seed: int) -> dict[str, object]:
    """The classifier's inputs. knowledge: "off" (none at all), "noise" (random knowledge
    ids on half the tokens, random expert bias, random rule label bias of the size real
    rule sums have: nothing to do with the labels) or "signal" (a rule label bias that
    votes for the true label on 70% of the docs, for a random one otherwise)."""
    g = torch.Generator().manual_seed(seed)
    n_docs, n_tokens = words.shape[0], words.numel()
    flat = words.reshape(-1)
    pos = (torch.arange(n_docs)[:, None] * (TOKENS + 1) + 1 + torch.arange(TOKENS)).reshape(-1)
    inputs: dict[str, object] = dict(
        enc={"hash_ids": torch.stack([flat, flat % 7], dim=1), "packed_pos": pos, "n_packed": n_docs * (TOKENS + 1)},
        doc_index=torch.arange(n_docs).repeat_interleave(TOKENS), n_docs=n_docs,
        bow_ids=torch.zeros(0, dtype=torch.long), bow_offsets=torch.zeros(n_docs, dtype=torch.long),
        bow_weights=torch.zeros(0), know_ids=torch.zeros(0, dtype=torch.long),
        know_offsets=torch.zeros(n_tokens, dtype=torch.long), know_dense=torch.zeros(n_tokens, 0),
        expert_bias=torch.zeros(n_tokens, N_EXPERTS), label_bias=torch.zeros(n_docs, N_LABELS))
    if knowledge == "noise":
        has_id = torch.rand(n_tokens, generator=g) < 0.5
        inputs["know_ids"] = torch.randint(0, N_IDS, (int(has_id.sum()),), generator=g)
        inputs["know_offsets"] = torch.cumsum(has_id.long(), 0) - has_id.long()
        inputs["expert_bias"] = 2.0 * torch.randn(n_tokens, N_EXPERTS, generator=g)
        inputs["label_bias"] = 5.0 * torch.randn(n_docs, N_LABELS, generator=g)
    elif knowledge == "signal":
        right = torch.rand(n_docs, generator=g) < 0.7
        voted = torch.where(right, labels, torch.randint(0, N_LABELS, (n_docs,), generator=g))
        inputs["label_bias"] = 5.0 * torch.nn.functional.one_hot(voted, N_LABELS).float()
    return inputs


def _classifier(gate: bool, knowledge_dropout: float = 0.0, encoder_dropout: float = 0.1,
                init_seed: int = 0) -> MoEDocClassifier:
    torch.manual_seed(init_seed)
    return MoEDocClassifier(HashEncoder(VOCAB, 16, depth=0, dropout=encoder_dropout), width=16, n_labels=N_LABELS,
                            n_experts=N_EXPERTS, k=2, d_ff=16, bow_rows=0, n_knowledge_ids=N_IDS, d_knowledge=4, dropout=0.0,
                            knowledge_gate=gate, knowledge_dropout=knowledge_dropout)


def _train(clf: MoEDocClassifier, inputs: dict[str, object], labels: torch.Tensor, steps: int = 120) -> None:
    # AdamW with decoupled weight decay, as the shipped configs train (L2_is_weight_decay)
    torch.manual_seed(1)
    opt = torch.optim.AdamW(clf.parameters(), lr=0.01, weight_decay=0.01)
    clf.train()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(clf(**inputs).logits, labels).backward()
        opt.step()
    clf.eval()


@torch.no_grad()
def _accuracy(clf: MoEDocClassifier, inputs: dict[str, object], labels: torch.Tensor) -> float:
    return float((clf(**inputs).logits.argmax(-1) == labels).float().mean())


N_TRAIN, N_DEV, N_HELD_OUT = 300, 600, 600
TRAIN, DEV, HELD_OUT = _make_docs(N_TRAIN, seed=0), _make_docs(N_DEV, seed=4), _make_docs(N_HELD_OUT, seed=1)


def _train_and_score(knowledge: str, gate: bool, knowledge_dropout: float = 0.0, *, check: bool = False,
                     init_seed: int = 0) -> tuple[float, MoEDocClassifier]:
    """Held-out accuracy after training. check: then keep knowledge on only if it scores
    strictly higher on the dev documents, as the component's dev-set check does."""
    clf = _classifier(gate, knowledge_dropout, init_seed=init_seed)
    _train(clf, _inputs(*TRAIN, knowledge, seed=2), TRAIN[1])
    if check:
        dev = _inputs(*DEV, knowledge, seed=4)
        with_knowledge = _accuracy(clf, dev, DEV[1])
        clf.knowledge_on = False
        clf.knowledge_on = with_knowledge > _accuracy(clf, dev, DEV[1])
    return _accuracy(clf, _inputs(*HELD_OUT, knowledge, seed=3), HELD_OUT[1]), clf


def _margin(accuracy: float) -> float:
    """Two binomial standard errors of a held-out accuracy near `accuracy`."""
    return 2 * math.sqrt(accuracy * (1 - accuracy) / N_HELD_OUT)


@pytest.fixture(scope="module")
def knowledge_off() -> float:
    return _train_and_score("off", gate=True)[0]


@pytest.mark.parametrize("knowledge_dropout", [0.25, 0.5])
def test_noise_knowledge_ends_no_worse_than_knowledge_off(knowledge_off: float, knowledge_dropout: float) -> None:
    """The gate, knowledge dropout and the dev-set check. Noise that is fixed per
    document (as real knowledge features are) lets the training memorise its documents
    through the router's knowledge projection, which no single scale can shut (see the
    next test); the dev documents show it does not generalise and the check turns
    knowledge off, leaving the knowledge-free path that knowledge dropout trained."""
    noise, clf = _train_and_score("noise", gate=True, knowledge_dropout=knowledge_dropout, check=True)
    assert knowledge_off > 1 / N_LABELS + 0.2  # the task is learned at all
    assert clf.knowledge_on is False
    assert noise >= knowledge_off - _margin(knowledge_off), (noise, knowledge_off)
    # a single scale cannot memorise documents: the noise rule bias stays near shut
    # (without the gate the same training leaves it at 0.6, see below)
    assert abs(clf.knowledge_gates()["rules"]) < 0.2, clf.knowledge_gates()


def test_without_the_dev_check_the_noise_costs_accuracy(knowledge_off: float) -> None:
    """The contrast for the test above: the same gated training with knowledge dropout,
    predicting with the noise."""
    noise, clf = _train_and_score("noise", gate=True, knowledge_dropout=0.25)
    assert noise < knowledge_off - _margin(knowledge_off), (noise, knowledge_off)
    assert clf.knowledge_gates()["router"] > 1.0  # what memorised it


def test_without_the_gate_the_same_noise_costs_accuracy(knowledge_off: float) -> None:
    """Noise rule bias at full strength from the first step is not unlearned in the
    same training."""
    ungated, clf = _train_and_score("noise", gate=False)
    assert ungated < knowledge_off - _margin(knowledge_off), (ungated, knowledge_off)
    assert clf.knowledge_gates()["rules"] > 0.3


def test_the_gate_opens_for_knowledge_that_predicts_the_labels() -> None:
    """Three initialisations, each trained with and without a rule bias that votes for
    the true label on 70% of the documents: the gate opens, the dev check keeps
    knowledge on, and every run with it beats the same run without it."""
    gaps = []
    for init_seed in range(3):
        off = _train_and_score("off", gate=True, init_seed=init_seed)[0]
        signal, clf = _train_and_score("signal", gate=True, check=True, init_seed=init_seed)
        assert clf.knowledge_gates()["rules"] > 0.3 and clf.knowledge_on is True
        gaps.append(signal - off)
    assert min(gaps) > 0 and sum(gaps) / 3 > _margin(0.83) / math.sqrt(3), gaps


def test_gate_starts_shut_and_knowledge_dropout_only_in_training() -> None:
    words, labels = _make_docs(8, seed=5)
    noise, off = _inputs(words, labels, "noise", seed=6), _inputs(words, labels, "off", seed=6)
    clf = _classifier(gate=True, knowledge_dropout=0.5, encoder_dropout=0.0).eval()  # the only randomness
    gates = clf.knowledge_gates()
    assert gates == {"rules": 0.0, "expert_bias": 0.0, "router": 0.0}
    with torch.no_grad():  # shut gates: knowledge changes nothing
        assert torch.allclose(clf(**noise).logits, clf(**off).logits, atol=1e-6)
        clf.label_bias_scale.fill_(1.0)
        first = clf(**noise).logits
        assert torch.equal(first, clf(**noise).logits)  # no dropout in eval
        clf.train()
        torch.manual_seed(0)
        dropped = [torch.isclose(clf(**noise).logits, clf(**off).logits, atol=1e-6).all(1) for _ in range(20)]
    seen = torch.stack(dropped)
    # per document: sometimes all its knowledge is dropped, sometimes none of it
    assert seen.any() and not seen.all()
    assert (seen.float().mean(0) < 1).all()


def test_no_gate_keeps_the_old_tensors_and_behaviour() -> None:
    gated, plain = _classifier(gate=True), _classifier(gate=False)
    assert set(gated.state_dict()) - set(plain.state_dict()) == {"expert_bias_scale"}
    assert plain.knowledge_gates()["rules"] == 1.0 and plain.knowledge_gates()["expert_bias"] == 1.0


def test_gate_is_saved_and_loaded_with_the_model() -> None:
    clf = _classifier(gate=True)
    with torch.no_grad():
        clf.label_bias_scale.fill_(0.37)
        clf.expert_bias_scale.fill_(-0.21)
    other = state_from_bytes(_classifier(gate=True), state_to_bytes(clf))
    assert other.knowledge_gates() == clf.knowledge_gates()
    # a file saved without the gate does not fit a gated model: the coded error names it
    with pytest.raises(WeightsFileError, match="knowledge_gate"):
        _load_pipeline_weights_across_gate_settings()


def _pipeline(**model: object) -> spacy.language.Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("sparse_expert_textcat", config={"use_knowledge": False, "model": {
        "@architectures": "spacy-sparse-expert.MoETextCat.v1", "n_experts": 2, "k": 1, "d_ff": 8, "bow_rows": 64,
        "encoder": {"@architectures": "spacy-sparse-expert.HashEncoder.v1", "width": 8, "depth": 1,
                    "d_hidden": 8, "rows": [50, 50, 50, 50]}, **model}})
    docs = [nlp.make_doc(t) for t in ("shares fell", "the striker scored", "markets rallied", "a late goal")]
    examples = [Example.from_dict(d, {"cats": {"business": float(i % 2 == 0), "sport": float(i % 2 == 1)}})
                for i, d in enumerate(docs)]
    nlp.initialize(lambda: examples)
    return nlp


def _load_pipeline_weights_across_gate_settings() -> None:
    plain, gated = _pipeline(knowledge_gate=False), _pipeline(knowledge_gate=True)
    gated.get_pipe("sparse_expert_textcat").from_bytes(plain.get_pipe("sparse_expert_textcat").to_bytes())


def test_pipeline_round_trip_keeps_the_gate(tmp_path) -> None:
    nlp = _pipeline(knowledge_gate=True, knowledge_dropout=0.25)
    module = torch_module(nlp.get_pipe("sparse_expert_textcat").model)
    with torch.no_grad():
        module.label_bias_scale.fill_(0.5)
        module.expert_bias_scale.fill_(0.25)
    nlp.to_disk(tmp_path / "nlp")
    loaded = spacy.load(tmp_path / "nlp")
    again = torch_module(loaded.get_pipe("sparse_expert_textcat").model)
    assert again.knowledge_gates() == module.knowledge_gates()
    assert again.knowledge_dropout == 0.25
    texts: list[str] = ["shares fell again", "a goal"]
    assert [d.cats for d in loaded.pipe(texts)] == [d.cats for d in nlp.pipe(texts)]


@pytest.mark.parametrize("key,value", [("knowledge_gate", "yes"), ("knowledge_gate", 1),
                                       ("knowledge_dropout", 1.0), ("knowledge_dropout", -0.1),
                                       ("knowledge_dropout", "0.2")])
def test_bad_settings_are_refused(key: str, value: object) -> None:
    with pytest.raises(ModelSettingError, match=rf"SSE-E115.*{key}"):
        _pipeline(**{key: value})


def _shared_parameters(clf: MoEDocClassifier) -> dict[str, torch.Tensor]:
    """Every parameter whose shape does not depend on the knowledge."""
    return {name: p for name, p in clf.state_dict().items()
            if not name.startswith("knowledge_bag.") and "knowledge_proj" not in name}


def test_the_knowledge_size_does_not_change_the_rest_of_the_initialisation() -> None:
    """With knowledge off a model has a 1-row id table and no dense features; with a KB
    it has thousands of rows. The rest of the model starts from the same weights either
    way, so knowledge on minus off measures the knowledge, not two initialisations."""
    built = []
    for n_ids, n_dense in ((1, 0), (5000, 7)):
        torch.manual_seed(0)
        built.append(MoEDocClassifier(HashEncoder(VOCAB, 16, depth=1), width=16, n_labels=N_LABELS,
                                      n_experts=N_EXPERTS, k=2, d_ff=16, bow_rows=64, n_moe_layers=2,
                                      n_knowledge_ids=n_ids, n_dense=n_dense, d_knowledge=4,
                                      knowledge_gate=True, knowledge_dropout=0.25))
    off, on = (_shared_parameters(clf) for clf in built)
    assert off.keys() == on.keys() and len(off) > 10
    for name in off:
        assert torch.equal(off[name], on[name]), name
    assert built[1].knowledge_bag.weight.shape == (5000, 4)


def test_knowledge_dropout_does_not_move_the_global_random_stream() -> None:
    """Knowledge dropout draws only when a batch has knowledge; it draws from a stream
    of its own, so the model's other dropout sees the same random numbers with
    knowledge on or off."""
    words, labels = _make_docs(8, seed=5)
    states = []
    for knowledge in ("off", "noise"):
        clf = _classifier(gate=True, knowledge_dropout=0.5).train()
        torch.manual_seed(3)
        clf(**_inputs(words, labels, knowledge, seed=6))
        states.append(torch.get_rng_state())
    assert torch.equal(states[0], states[1])


def test_knowledge_off_predicts_as_without_knowledge_inputs() -> None:
    """knowledge_on=False (what the dev-set check sets) predicts exactly what the model
    predicts given no knowledge at all, with every knowledge path open; training ignores it."""
    words, labels = _make_docs(8, seed=5)
    noise, off = _inputs(words, labels, "noise", seed=6), _inputs(words, labels, "off", seed=6)
    clf = _classifier(gate=True, encoder_dropout=0.0).eval()
    with torch.no_grad():
        clf.label_bias_scale.fill_(1.0)
        clf.expert_bias_scale.fill_(1.0)
        for moe in clf.moe:
            moe.router.knowledge_proj.weight.normal_()
        assert not torch.allclose(clf(**noise).logits, clf(**off).logits, atol=1e-3)
        clf.knowledge_on = False
        assert torch.allclose(clf(**noise).logits, clf(**off).logits, atol=1e-6)
        clf.train()
        assert not torch.allclose(clf(**noise).logits, clf(**off).logits, atol=1e-3)
