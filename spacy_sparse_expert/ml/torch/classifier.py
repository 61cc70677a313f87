"""The document classifier: token encoder -> knowledge-biased sparse MoE -> pooling ->
labels, plus a sparse bag-of-n-grams linear path and a rule label bias.

Everything is flat: N tokens of B documents in document order, ``doc_index`` (N,)
names each token's document. Pure PyTorch, no spaCy.
"""
from __future__ import annotations

from typing import Any, Dict, List, NamedTuple, Optional, Tuple

import torch
from torch import Tensor, nn

from .moe import SparseMoE
from .cached_forward import CachedForward, hash_ids_at
from .pooling import POOLINGS
from .rng import own_random_stream
from .token_cache import TokenCache


class ClassifierOutput(NamedTuple):
    """What :class:`MoEDocClassifier` returns.

    logits: (B, L) raw label scores; the output activation (softmax if exclusive,
        else sigmoid) is applied outside torch, by whoever reads them.
    aux_losses: (2,) fp32 [load-balancing loss, router z-loss], summed over the MoE
        layers (weight them with :func:`~.losses.weighted_aux_loss`).
    router_logits: one (N, E) fp32 tensor per MoE layer.
    expert_indices, expert_weights: (N, k) routing of the first MoE layer.
    contributions: (B, L) per path of the model: "experts" (encoder -> MoE -> pooling
        -> output layer, its bias included), "rules" (the rules' label bias), and, where
        the model has them, "ngrams" and "knowledge_bag". Their sum, in this order, is
        ``logits``: not approximately, it is how the logits are computed.
    """

    logits: Tensor
    aux_losses: Tensor
    router_logits: Tuple[Tensor, ...]
    expert_indices: Tensor
    expert_weights: Tensor
    contributions: Dict[str, Tensor]


def rule_logit_bias(label_bias: Tensor, scale: Tensor) -> Tensor:
    """(B, L) what the rules add to the logits: ``scale * sign(b) * log1p(|b|)`` of
    the summed rule label bias b (B, L).

    Rule label biases are sums over hits and grow with document length (BBC: median
    20, up to ~75); log-compressing them keeps long documents from drowning the
    learned paths while the sign and order of the rule votes stay."""
    return scale * torch.sign(label_bias) * torch.log1p(label_bias.abs())


class MoEDocClassifier(CachedForward, nn.Module):
    """encoder (nn.Module): ``encoder(**enc) -> (N, width)``.
    width (int): encoder output width = MoE d_model.
    n_labels (int): L.
    n_experts, k, d_ff, capacity_factor: the SparseMoE settings (capacity_factor None
        = dropless).
    n_moe_layers (int): MoE blocks, each ``x = norm(x + moe(x))``.
    n_knowledge_ids (int): size of the sparse knowledge id space (bag per token).
    d_knowledge (int): width of the knowledge id embedding.
    n_dense (int): dense knowledge features per token.
    pooling (str): "attention" or "mean_max".
    bow_rows (int): rows of the hashed bag-of-n-grams table (0 disables the path).
    bow_scale (float): multiplier on that table's output; with Adam it acts as a
        learning-rate multiplier for the linear path.
    path_dropout (float): in training, the probability that a document's encoder/MoE
        and rule logits are dropped so that only the linear path predicts it; keeps the
        linear path a classifier of its own after the MoE path has fitted the data.
    knowledge_bow (bool): a second linear path over each document's bag of knowledge
        ids (the types, relation predicates, rule hits and flags of its tokens), TF
        sublinear and L2-normalised, scaled like the n-gram path.
    knowledge_gate (bool): every knowledge path starts switched off and is opened only
        as far as training finds it useful (see :meth:`knowledge_gates`): the rules'
        label bias and the per-token expert bias get learned scales that start at 0
        (without the gate they start at 1: the rules' and the expert bias's full
        strength from the first step); the router's knowledge projection and the
        knowledge bag start at 0 either way.
    knowledge_dropout (float): in training, the probability that all knowledge of a
        document (its tokens' knowledge vectors and expert bias, its rule label bias
        and knowledge bag) is dropped, so the knowledge-free path stays a classifier of
        its own and knowledge cannot become a shortcut the model depends on.
    exclusive (bool): the labels are exclusive (read the logits with a softmax) or
        independent (sigmoids); the module itself returns logits either way.
    dropout (float).

    logits = output(pool(moe(encoder))) + scale * sign(b) * log1p(|b|) + bow + knowledge
    bag, b the rules' doc-level label bias; each term is returned in ``contributions``.
    """

    def __init__(
        self,
        encoder: nn.Module,
        *,
        width: int,
        n_labels: int,
        n_experts: int = 4,
        k: int = 2,
        d_ff: int = 128,
        capacity_factor: Optional[float] = None,
        n_moe_layers: int = 1,
        n_knowledge_ids: int = 1,
        d_knowledge: int = 16,
        n_dense: int = 0,
        pooling: str = "attention",
        bow_rows: int = 262144,
        bow_scale: float = 1.0,
        path_dropout: float = 0.0,
        knowledge_bow: bool = False,
        knowledge_gate: bool = False,
        knowledge_dropout: float = 0.0,
        exclusive: bool = True,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {sorted(POOLINGS)}, got {pooling!r}")
        self.encoder = encoder
        self.exclusive = exclusive
        self.n_labels = n_labels
        self.n_experts = n_experts
        # Everything whose size depends on the knowledge (the id table, the routers'
        # knowledge projections) draws from a random stream of its own, seeded by one
        # draw from the global stream. The rest of the model therefore starts from the
        # same weights with knowledge on or off, whatever the KB's size, and a
        # difference between the two is the knowledge's, not a different initialisation.
        self._knowledge_seed = int(torch.randint(0, 2**62, (1,), device="cpu").item())
        with own_random_stream(self._knowledge_seed):
            self.knowledge_bag = nn.EmbeddingBag(max(1, n_knowledge_ids), d_knowledge, mode="sum")
            nn.init.normal_(self.knowledge_bag.weight, std=0.1)
        self._knowledge_draws = 0
        n_knowledge = d_knowledge + n_dense
        self.moe = nn.ModuleList(
            SparseMoE(width, d_ff, n_experts, k, n_knowledge=n_knowledge, capacity_factor=capacity_factor)
            for _ in range(n_moe_layers)
        )
        self.moe_norm = nn.ModuleList(nn.LayerNorm(width) for _ in range(n_moe_layers))
        self.pool = POOLINGS[pooling](width)
        self.output = nn.Linear(self.pool.n_out, n_labels)
        self.bow: Optional[nn.EmbeddingBag] = None
        if bow_rows > 0:
            # starts at zero, like spaCy's SparseLinear in TextCatBOW
            self.bow = nn.EmbeddingBag(bow_rows, n_labels, mode="sum")
            nn.init.zeros_(self.bow.weight)
        self.bow_scale = float(bow_scale)
        self.path_dropout = float(path_dropout)
        self.know_bow: Optional[nn.Parameter] = None
        if knowledge_bow:
            self.know_bow = nn.Parameter(torch.zeros(max(1, n_knowledge_ids), n_labels))
        # inverse document frequency per hashed n-gram, fitted on the training docs by
        # set_bow_idf; ones = a binary bag. Each doc's bag is L2-normalised (TF-IDF).
        self.register_buffer("bow_idf", torch.ones(max(bow_rows, 1)))
        # how much the rules' doc-level label bias moves the logits; learned. With the
        # gate it starts at 0: a scale of 0 still gets the gradient sum(dL/dlogits * rule
        # bias), so it opens when the rules agree with the labels and stays near 0 (pulled
        # there by weight decay) when they do not
        self.label_bias_scale = nn.Parameter(torch.full((1,), 0.0 if knowledge_gate else 1.0))  # (1,): thinc
        # optimizers reject 0-d tensors. The expert bias's scale exists only with the gate,
        # so that models saved without it keep their exact tensors
        self.expert_bias_scale: Optional[nn.Parameter] = nn.Parameter(torch.zeros(1)) if knowledge_gate else None
        self.knowledge_dropout = float(knowledge_dropout)
        # False: predict (not train) as if no document had knowledge, the way knowledge
        # dropout trains a quarter of them; the component sets it from the dev-set check
        # (not a tensor: the weights are the same either way)
        self.knowledge_on = True
        self.dropout = nn.Dropout(dropout)
        # per-token states of a context-free model, computed once per distinct token in
        # inference (token_cache.py); 0 slots turns it off
        self.token_cache = TokenCache()

    def forward(
        self,
        enc: Dict[str, Any],
        doc_index: Tensor,
        n_docs: int,
        bow_ids: Tensor,
        bow_offsets: Tensor,
        bow_weights: Tensor,
        know_ids: Tensor,
        know_offsets: Tensor,
        know_dense: Tensor,
        expert_bias: Tensor,
        label_bias: Tensor,
        token_keys: Optional[Tensor] = None,
        bow_knowledge: Optional[Tensor] = None,
        knowledge_keys: Optional[Tensor] = None,
    ) -> ClassifierOutput:
        """enc: encoder inputs; doc_index: (N,); bow_ids, bow_weights: (M,) with
        bow_offsets (B,); know_ids: (K,) with know_offsets (N,) (one bag per token);
        know_dense: (N, n_dense); expert_bias: (N, E); label_bias: (B, L); token_keys:
        (N,) int64 digests of each token's encoder inputs, which let a context-free
        model predict from its token cache (see :meth:`uses_token_cache`); bow_knowledge:
        (M,) bool, the n-gram bag's entries that are the KB's words (its linked entities'
        descriptions), dropped with the rest of a document's knowledge; knowledge_keys:
        (N,) int64 digests of each token's encoder inputs and knowledge inputs
        (``featurize.knowledge_digests``), under which the token cache keeps the states
        of tokens with knowledge."""
        if token_keys is not None and self.uses_token_cache(know_ids, know_dense, expert_bias, knowledge_keys):
            return self._forward_cached(enc, token_keys, doc_index, n_docs, bow_ids, bow_offsets, bow_weights,
                                        know_ids, know_offsets, label_bias, bow_knowledge,
                                        know_dense=know_dense, expert_bias=expert_bias,
                                        knowledge_keys=knowledge_keys)
        if "hash_ids_of" in enc:  # lazy ids, but this forward reads every token's
            enc = {**{k: v for k, v in enc.items() if k != "hash_ids_of"},
                   "hash_ids": hash_ids_at(enc, None, doc_index.device)}
        x = self.encoder(**enc)
        n_tokens = x.shape[0]
        keep_doc: Optional[Tensor] = None
        if not self.training and not self.knowledge_on:
            keep_doc = x.new_zeros(n_docs)
            expert_bias, label_bias = torch.zeros_like(expert_bias), torch.zeros_like(label_bias)
        elif self.training and self.knowledge_dropout > 0.0 and (
                _has_knowledge(know_ids, know_dense, expert_bias, label_bias)
                or (bow_knowledge is not None and bool(bow_knowledge.any()))):
            # drawn from the knowledge's own stream, so the global stream (dropout, path
            # dropout) follows the same sequence with knowledge on or off
            self._knowledge_draws += 1
            with own_random_stream(self._knowledge_seed + self._knowledge_draws):
                keep_doc = torch.rand(n_docs) >= self.knowledge_dropout
            keep_doc = keep_doc.to(device=x.device, dtype=x.dtype)
            expert_bias = expert_bias * keep_doc[doc_index].unsqueeze(1).to(expert_bias.dtype)
            label_bias = label_bias * keep_doc.unsqueeze(1).to(label_bias.dtype)
        if self.expert_bias_scale is not None:
            expert_bias = expert_bias * self.expert_bias_scale.to(expert_bias.dtype)
        aux = x.new_zeros(2, dtype=torch.float32)
        indices = torch.zeros(n_tokens, self.moe[0].k if len(self.moe) else 0, dtype=torch.long, device=x.device)
        weights = indices.to(torch.float32)
        router_logits: List[Tensor] = [x.new_zeros(n_tokens, moe.n_experts, dtype=torch.float32) for moe in self.moe]
        if n_tokens and len(self.moe):
            knowledge = torch.cat([self.knowledge_bag(know_ids, know_offsets), know_dense.to(x.dtype)], dim=1)
            if keep_doc is not None:  # the id embeddings of dropped documents' tokens
                knowledge = knowledge * keep_doc[doc_index].unsqueeze(1)
            for i, (moe, norm) in enumerate(zip(self.moe, self.moe_norm)):
                out = moe(x, knowledge, expert_bias)
                x = norm(x + self.dropout(out.output))
                aux = aux + torch.stack([out.load_balancing_loss, out.z_loss])
                router_logits[i] = out.router_logits
                if i == 0:
                    indices, weights = out.expert_indices, out.expert_weights
        return self._doc_outputs(x, aux, tuple(router_logits), indices, weights, doc_index, n_docs, bow_ids,
                                 bow_offsets, bow_weights, know_ids, know_offsets, label_bias, keep_doc,
                                 bow_knowledge=bow_knowledge)

    def _doc_outputs(self, x: Tensor, aux: Tensor, router_logits: Tuple[Tensor, ...], indices: Tensor,
                     weights: Tensor, doc_index: Tensor, n_docs: int, bow_ids: Tensor, bow_offsets: Tensor,
                     bow_weights: Tensor, know_ids: Tensor, know_offsets: Tensor, label_bias: Tensor,
                     keep_doc: Optional[Tensor], experts: Optional[Tensor] = None,
                     bow_knowledge: Optional[Tensor] = None) -> ClassifierOutput:
        """Pool the token states into each document's logits (unless ``experts`` gives
        them) and add the document-level paths (the rules' label bias, the n-gram bag,
        the knowledge bag)."""
        if experts is None:
            experts = self.output(self.dropout(self.pool(x, doc_index, n_docs)))
        rules = rule_logit_bias(label_bias.to(experts.dtype), self.label_bias_scale)
        contributions: Dict[str, Tensor] = {"experts": experts, "rules": rules}
        if self.bow is not None:
            if self.training and self.path_dropout > 0.0:
                keep = (torch.rand(n_docs, 1, device=experts.device) >= self.path_dropout).to(experts.dtype)
                contributions["experts"], contributions["rules"] = experts * keep, rules * keep
            bow_weights = bow_weights.to(experts.dtype)
            if bow_knowledge is not None and keep_doc is not None and bow_knowledge.numel():
                # the KB's words of documents whose knowledge is dropped (or switched off)
                counts = torch.diff(bow_offsets, append=bow_offsets.new_full((1,), bow_ids.shape[0]))
                entry_doc = torch.repeat_interleave(torch.arange(n_docs, device=bow_ids.device), counts)
                drop = bow_knowledge & (keep_doc[entry_doc] == 0)
                bow_weights = bow_weights.masked_fill(drop, 0.0)
            contributions["ngrams"] = self.bow_scale * self.bow(bow_ids, bow_offsets, per_sample_weights=(
                self._bow_weights(bow_ids, bow_offsets, bow_weights, n_docs)))
        if self.know_bow is not None:
            bag = (self._knowledge_bag(know_ids, know_offsets, doc_index, n_docs) if know_ids.numel()
                   else experts.new_zeros(n_docs, self.n_labels))
            if keep_doc is not None:
                bag = bag * keep_doc.unsqueeze(1).to(bag.dtype)
            contributions["knowledge_bag"] = self.bow_scale * bag
        logits = sum_contributions(contributions)
        return ClassifierOutput(logits, aux, router_logits, indices, weights, contributions)

    def _bow_weights(self, ids: Tensor, offsets: Tensor, weights: Tensor, n_docs: int) -> Tensor:
        """weights * idf, L2-normalised within each document's bag."""
        w = weights * self.bow_idf[ids].to(weights.dtype)
        counts = torch.diff(offsets, append=offsets.new_full((1,), ids.shape[0]))
        doc = torch.repeat_interleave(torch.arange(n_docs, device=ids.device), counts)
        norm = w.new_zeros(n_docs).index_add(0, doc, w * w).sqrt().clamp_min(1e-12)
        return w / norm[doc]

    def _knowledge_bag(self, ids: Tensor, offsets: Tensor, doc_index: Tensor, n_docs: int) -> Tensor:
        """(B, L): each document's knowledge ids counted, weighted 1 + log(count),
        L2-normalised, times the learned (n_ids, L) table."""
        assert self.know_bow is not None
        n_ids = self.know_bow.shape[0]
        per_token = torch.diff(offsets, append=offsets.new_full((1,), ids.shape[0]))
        doc = doc_index[torch.repeat_interleave(torch.arange(offsets.shape[0], device=ids.device), per_token)]
        keys, counts = torch.unique(doc * n_ids + ids, return_counts=True)
        doc_u, id_u = keys // n_ids, keys % n_ids
        w = 1.0 + torch.log(counts.to(self.know_bow.dtype))
        norm = w.new_zeros(n_docs).index_add(0, doc_u, w * w).sqrt().clamp_min(1e-12)
        w = w / norm[doc_u]
        return self.know_bow.new_zeros(n_docs, self.n_labels).index_add(0, doc_u, self.know_bow[id_u] * w[:, None])

    @torch.no_grad()
    def knowledge_gates(self) -> Dict[str, float]:
        """How open each knowledge path is; 0 = that knowledge has no effect.

        "rules": the scale of the rules' label bias; "expert_bias": the scale of the rules'
        per-token expert bias (1.0 without the gate: always at full strength); "router":
        the Frobenius norm of the routers' knowledge projections (summed over the MoE
        layers); "knowledge_bag": the norm of the knowledge-bag table times bow_scale,
        where the model has that path."""
        gates = {
            "rules": float(self.label_bias_scale),
            "expert_bias": float(self.expert_bias_scale) if self.expert_bias_scale is not None else 1.0,
            "router": float(sum(float(moe.router.knowledge_proj.weight.norm()) for moe in self.moe
                                if moe.router.knowledge_proj is not None)),
        }
        if self.know_bow is not None:
            gates["knowledge_bag"] = float(self.know_bow.norm()) * self.bow_scale
        return gates

    @torch.no_grad()
    def set_knowledge_prior(self, prior: Tensor, strength: float) -> None:
        """Start the knowledge bag's (n_ids, L) table at ``strength * prior``: a document
        whose (L2-normalised) bag of knowledge ids is all in label j's prior ids gets
        ``strength`` added to that label's logit before any training. The table is stored
        divided by bow_scale, as the path multiplies it back."""
        if self.know_bow is None:
            raise ValueError("set_knowledge_prior needs the knowledge bag path (knowledge_bow=True)")
        if tuple(prior.shape) != tuple(self.know_bow.shape):
            raise ValueError(f"prior of shape {tuple(prior.shape)} for a knowledge bag of {tuple(self.know_bow.shape)}")
        self.know_bow.copy_((prior.to(self.know_bow) * (float(strength) / self.bow_scale)))

    @torch.no_grad()
    def set_bow_idf(self, doc_freq: Tensor, n_docs: int) -> None:
        """doc_freq: (bow_rows,) documents containing each hashed n-gram among n_docs.
        Smoothed idf = log((1 + n) / (1 + df)) + 1, as scikit-learn's TfidfVectorizer."""
        idf = torch.log((1.0 + n_docs) / (1.0 + doc_freq.to(self.bow_idf.dtype))) + 1.0
        self.bow_idf.copy_(idf.to(self.bow_idf.device))


def _has_knowledge(know_ids: Tensor, know_dense: Tensor, expert_bias: Tensor, label_bias: Tensor) -> bool:
    """Whether a batch carries any knowledge input at all."""
    return bool(know_ids.numel()) or bool(know_dense.any()) or bool(expert_bias.any()) or bool(label_bias.any())


def sum_contributions(contributions: Dict[str, Tensor]) -> Tensor:
    """(B, L) the logits: the paths' contributions added in their order."""
    parts = iter(contributions.values())
    total = next(parts)
    for part in parts:
        total = total + part
    return total


__all__ = ["ClassifierOutput", "MoEDocClassifier", "rule_logit_bias", "sum_contributions"]
