"""The classifier's inference from its token cache (`token_cache.py`): what
`MoEDocClassifier` computes per token, computed once per distinct token and gathered for
every occurrence, for a model whose token states depend on each token alone (a
HashEncoder without window blocks, an MoE without capacity limits). A token with knowledge
inputs is cached under a digest of its ids and its knowledge. Kept apart from the
classifier's training forward, which it must equal (tests/ml/test_token_cache.py).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Dict, Optional, Tuple

import torch
from torch import Tensor

from .encoder import HashEncoder
from .pooling import AttentionPool, segment_mean, segment_softmax
from .token_cache import Rows

if TYPE_CHECKING:  # pragma: no cover
    from .classifier import ClassifierOutput


def hash_ids_at(enc: Dict[str, Any], positions: Optional[Tensor], device: Optional[torch.device] = None) -> Tensor:
    """The hashed ids of the tokens at ``positions`` (all tokens for None) from a
    HashEncoder's inputs: rows of ``enc["hash_ids"]``, or what ``enc["hash_ids_of"]`` (a
    callable from int64 positions, or None, to an array of rows; see
    ``featurize.LazyHashIds``) makes for them, on ``device`` (that of ``positions``)."""
    if "hash_ids" in enc:
        ids: Tensor = enc["hash_ids"]
        return ids if positions is None else ids.index_select(0, positions)
    rows = enc["hash_ids_of"](None if positions is None else positions.cpu().numpy())
    return torch.from_numpy(rows).to(positions.device if positions is not None else device)


class CachedForward:
    """Mixin of `MoEDocClassifier`: its token-cached inference (reads the classifier's
    encoder, moe, moe_norm, pool, output, knowledge_bag, expert_bias_scale and
    token_cache, and finishes with its `_doc_outputs`)."""

    def uses_token_cache(self, know_ids: Tensor, know_dense: Tensor, expert_bias: Tensor,
                         knowledge_keys: Optional[Tensor] = None) -> bool:
        """Whether this forward can take each token's state from the token cache: in
        inference, with an encoder that sees each token alone (a HashEncoder without
        window blocks) and an MoE without capacity limits (whose drops depend on the
        batch). A token's state then depends on its own ids and its own knowledge only.
        Tokens with knowledge inputs (inside a linked span or a rule match) are cached
        under a digest of both (``knowledge_keys``); a forward whose tokens carry
        knowledge without those keys reads no cache."""
        if self.training or not self.caches_tokens():
            return False
        if knowledge_keys is not None or not self.knowledge_on:
            return True
        return not (bool(know_ids.numel()) or bool(know_dense.any()) or bool(expert_bias.any()))

    def caches_tokens(self) -> bool:
        """Whether this model's inference takes token states from its token cache (see
        `uses_token_cache`): then its inputs may carry ``enc["hash_ids_of"]``, which
        hashes only the tokens the cache lacks, instead of every token's ``hash_ids``."""
        if self.token_cache.slots <= 0 or not len(self.moe):
            return False
        if not isinstance(self.encoder, HashEncoder) or len(self.encoder.blocks):
            return False
        return all(moe.capacity_factor is None for moe in self.moe)

    def _token_rows(self, enc: Dict[str, Any], positions: Tensor, knowledge: Optional[Tensor] = None,
                    expert_bias: Optional[Tensor] = None) -> Rows:
        """What the forward computes per token, for the tokens at ``positions``, each
        computed alone (with its row of ``knowledge`` and ``expert_bias``, if given): its
        routing and router logits and, with attention pooling, its attention score and
        its projections through the two halves of the output layer (whose sum over a
        document is the pooled vector's projection); otherwise its state after the MoE
        layers."""
        m = positions.shape[0]
        x = self.encoder(hash_ids=hash_ids_at(enc, positions),
                         packed_pos=torch.arange(m, device=positions.device), n_packed=m)
        rows: Rows = {}
        for i, (moe, norm) in enumerate(zip(self.moe, self.moe_norm)):
            # zero knowledge and no expert bias add nothing to the router's logits
            # (the knowledge projection has no bias), so a cached token takes None
            out = moe(x, knowledge, expert_bias)
            x = norm(x + out.output)
            rows[f"router_logits_{i}"] = out.router_logits
            if i == 0:
                rows["indices"], rows["weights"] = out.expert_indices, out.expert_weights
        if isinstance(self.pool, AttentionPool):
            width = x.shape[1]
            rows["score"] = self.pool.score(x)
            rows["attended"] = x @ self.output.weight[:, :width].t()
            rows["averaged"] = x @ self.output.weight[:, width:].t()
        else:
            rows["x"] = x
        return rows

    def _token_knowledge(self, positions: Tensor, know_ids: Tensor, know_offsets: Tensor, know_dense: Tensor,
                         expert_bias: Tensor) -> Tuple[Tensor, Tensor]:
        """The knowledge vectors and expert bias (already scaled) of the tokens at
        ``positions``: their knowledge bags alone, with their ids in the same order."""
        bag_sizes = torch.diff(know_offsets, append=know_offsets.new_full((1,), know_ids.shape[0]))
        sizes = bag_sizes.index_select(0, positions)
        bag_starts = torch.cumsum(sizes, 0) - sizes
        ids = know_ids[torch.repeat_interleave(know_offsets.index_select(0, positions) - bag_starts, sizes)
                       + torch.arange(int(sizes.sum()), device=sizes.device)]
        knowledge = torch.cat([self.knowledge_bag(ids, bag_starts),
                               know_dense.index_select(0, positions).to(self.knowledge_bag.weight.dtype)], dim=1)
        return knowledge, expert_bias.index_select(0, positions)

    def _forward_cached(self, enc: Dict[str, Any], token_keys: Tensor, doc_index: Tensor, n_docs: int,
                        bow_ids: Tensor, bow_offsets: Tensor, bow_weights: Tensor, know_ids: Tensor,
                        know_offsets: Tensor, label_bias: Tensor,
                        bow_knowledge: Optional[Tensor] = None, know_dense: Optional[Tensor] = None,
                        expert_bias: Optional[Tensor] = None,
                        knowledge_keys: Optional[Tensor] = None) -> ClassifierOutput:
        keep_doc = None if self.knowledge_on else label_bias.new_zeros(n_docs)
        compute: Callable[[Tensor], Rows] = lambda positions: self._token_rows(enc, positions)
        keys = token_keys
        if keep_doc is not None:
            label_bias = torch.zeros_like(label_bias)
        elif knowledge_keys is not None and know_dense is not None and expert_bias is not None:
            # every token computed with its knowledge: for a token without any, zero
            # knowledge and no expert bias add exactly nothing to the router's logits (the
            # knowledge projection has no bias), so its state is the one cached under its
            # token key; a token with knowledge is cached under the digest of both
            scaled = expert_bias if self.expert_bias_scale is None else (
                expert_bias * self.expert_bias_scale.to(expert_bias.dtype))
            keys = knowledge_keys
            compute = lambda positions: self._token_rows(enc, positions, *self._token_knowledge(
                positions, know_ids, know_offsets, know_dense, scaled))
        rows = self.token_cache.gather(keys, [p for p in self.parameters()], compute)
        router_logits = tuple(rows[f"router_logits_{i}"] for i in range(len(self.moe)))
        aux = label_bias.new_zeros(2, dtype=torch.float32)  # the auxiliary losses are for training
        if "x" in rows:
            experts = None
            x = rows["x"]
        else:
            # output(pool(x)) = sum_t a_t W1 x_t + mean_t W2 x_t + b, the W x_t cached
            attn = segment_softmax(rows["score"].squeeze(1), doc_index, n_docs)
            attended = rows["attended"]
            experts = (attended.new_zeros(n_docs, attended.shape[1]).index_add(0, doc_index, attended * attn[:, None])
                       + segment_mean(rows["averaged"], doc_index, n_docs) + self.output.bias)
            x = attended
        return self._doc_outputs(x, aux, router_logits, rows["indices"], rows["weights"], doc_index, n_docs,
                                 bow_ids, bow_offsets, bow_weights, know_ids, know_offsets, label_bias, keep_doc,
                                 experts=experts, bow_knowledge=bow_knowledge)
