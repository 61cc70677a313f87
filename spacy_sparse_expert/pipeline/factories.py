"""The factories of the ``sparse_expert_textcat`` and ``sparse_expert_textcat_multilabel``
components (``textcat.py``): their names, default config and score weights. The entry
points in pyproject.toml name these functions, so spaCy finds the factories without
importing the package first.
"""
# No `from __future__ import annotations`: spaCy validates the factories' settings with
# a pydantic model built from their signatures, which needs real types.
from typing import Any, Callable, Dict, Optional

from spacy.language import Language
from thinc.api import Config, Model

from .textcat import SparseExpertTextCategorizer

DEFAULT_MODEL_CONFIG = """
[model]
@architectures = "spacy-sparse-expert.MoETextCat.v1"
exclusive_classes = {exclusive}
n_experts = 4
k = 2
d_ff = 64
capacity_factor = null
n_moe_layers = 1
d_knowledge = 16
pooling = "attention"
bow_rows = 262144
ngram_size = 2
bow_scale = 10.0
path_dropout = 0.5
knowledge_bow = false
dropout = 0.1
nO = null

[model.encoder]
@architectures = "spacy-sparse-expert.HashEncoder.v1"
width = 64
attrs = ["NORM", "PREFIX", "SUFFIX", "SHAPE"]
rows = [5000, 2500, 2500, 2500]
n_hashes = 2
window_size = 1
depth = 1
d_hidden = 128
dropout = 0.1
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_MODEL_CONFIG.format(exclusive="true"))["model"]
DEFAULT_MULTILABEL_MODEL = Config().from_str(DEFAULT_MODEL_CONFIG.format(exclusive="false"))["model"]

_SCORE_WEIGHTS = {
    "cats_score": 1.0,
    "cats_score_desc": None,
    "cats_micro_p": None,
    "cats_micro_r": None,
    "cats_micro_f": None,
    "cats_macro_p": None,
    "cats_macro_r": None,
    "cats_macro_f": None,
    "cats_macro_auc": None,
    "cats_f_per_type": None,
}
_ASSIGNS = ["doc.cats", "doc.spans", "doc._.kb_entities", "doc._.rule_hits"]


def _default_config(model: Any, threshold: float, scorer: str) -> Dict[str, Any]:
    """The settings both factories share, with their own model, threshold and scorer."""
    return {
        "model": model,
        "threshold": threshold,
        "use_knowledge": True,
        "store_routing": False,
        "load_balancing_weight": 0.01,
        "z_loss_weight": 0.001,
        "max_batch_tokens": 100_000,
        "check_knowledge": True,
        "scorer": {"@scorers": scorer},
    }


@Language.factory(
    "sparse_expert_textcat",
    assigns=_ASSIGNS,
    default_config=_default_config(DEFAULT_MODEL, 0.0, "spacy-sparse-expert.textcat_scorer.v1"),
    default_score_weights=_SCORE_WEIGHTS,
)
def make_sparse_expert_textcat(
    nlp: Language, name: str, model: Model, threshold: float, use_knowledge: bool, store_routing: bool,
    load_balancing_weight: float, z_loss_weight: float, scorer: Optional[Callable], max_batch_tokens: int = 100_000,
    check_knowledge: bool = True,
) -> SparseExpertTextCategorizer:
    """Exclusive classes (softmax): exactly one label per document.

    model (Model[List[Doc], Floats2d]): the classifier (MoETextCat.v1 by default).
    threshold (float): unused for exclusive classes (kept for spaCy's scorer).
    use_knowledge (bool): feed the KB and rules to the model; false turns every
        knowledge input off (the model is the same otherwise).
    store_routing (bool): record per-token experts and weights in ``doc._.routing``.
    load_balancing_weight (float): weight of the MoE load-balancing loss, which keeps
        the experts evenly used.
    z_loss_weight (float): weight of the router z-loss, which keeps the router's
        logits small (stable routing).
    max_batch_tokens (int): predict in parts of at most this many tokens (a longer doc is
        a part of its own), so memory stays bounded when long docs (up to nlp.max_length,
        1,000,000 characters) share a batch; 0 = no limit. Scores change only by float
        rounding (without capacity_factor).
    scorer (Optional[Callable]): scores doc.cats for `spacy evaluate` and training
        (spaCy's Scorer.score_cats: cats_score, cats_macro_f, cats_macro_auc, ...).
    check_knowledge (bool): at each evaluation on the dev set in training, predict with
        and without the knowledge inputs and keep knowledge on only if it scores higher
        (``cfg["knowledge_check"]``, saved with the pipeline), so that knowledge that
        does not help on dev is not used; false keeps knowledge on.
    """
    return SparseExpertTextCategorizer(
        nlp.vocab, model, name, exclusive=True, threshold=threshold, use_knowledge=use_knowledge,
        store_routing=store_routing, load_balancing_weight=load_balancing_weight, z_loss_weight=z_loss_weight,
        scorer=scorer, max_batch_tokens=max_batch_tokens, check_knowledge=check_knowledge,
    )


@Language.factory(
    "sparse_expert_textcat_multilabel",
    assigns=_ASSIGNS,
    default_config=_default_config(DEFAULT_MULTILABEL_MODEL, 0.5, "spacy-sparse-expert.textcat_multilabel_scorer.v1"),
    default_score_weights=_SCORE_WEIGHTS,
)
def make_sparse_expert_textcat_multilabel(
    nlp: Language, name: str, model: Model, threshold: float, use_knowledge: bool, store_routing: bool,
    load_balancing_weight: float, z_loss_weight: float, scorer: Optional[Callable], max_batch_tokens: int = 100_000,
    check_knowledge: bool = True,
) -> SparseExpertTextCategorizer:
    """Independent labels (sigmoid): any number of labels per document.

    threshold (float): a label counts as predicted at score >= threshold (scorer and
        `spacy evaluate`; doc.cats keeps every score).

    The other settings are those of ``sparse_expert_textcat``."""
    return SparseExpertTextCategorizer(
        nlp.vocab, model, name, exclusive=False, threshold=threshold, use_knowledge=use_knowledge,
        store_routing=store_routing, load_balancing_weight=load_balancing_weight, z_loss_weight=z_loss_weight,
        scorer=scorer, max_batch_tokens=max_batch_tokens, check_knowledge=check_knowledge,
    )


__all__ = ["DEFAULT_MODEL_CONFIG", "make_sparse_expert_textcat", "make_sparse_expert_textcat_multilabel"]
