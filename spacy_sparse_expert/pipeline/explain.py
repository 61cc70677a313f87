"""Explanations of a prediction: what each path of the model added to each label's
logit (the model's own ``contributions``, so they add up to its logits), each rule's
share of the rules' part, an HTML view of one document (linked entities, rule hits,
the experts each token went to) and a PNG of the expert load per predicted label.

The experts in the HTML view and the expert load need docs processed with
``store_routing = true``.
"""
from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from spacy.tokens import Doc, Span

from ..errors import Errors
from ..ml.architectures import torch_module
from ..ml.inputs import build_inputs, to_torch

# one colour per expert, repeated when there are more experts than colours
_COLOURS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
            "#9c755f", "#bab0ac"]
_PATH_NAMES = {"experts": "experts", "ngrams": "n-grams", "knowledge_bag": "knowledge bag"}


class Explanation(NamedTuple):
    """One document's prediction taken apart (arrays over ``labels``).

    logits (np.ndarray): (L,) the model's logits; softmax (exclusive) or sigmoid of
        them gives ``doc.cats``.
    contributions (Dict[str, np.ndarray]): (L,) per path of the model ("experts",
        "rules", and "ngrams", "knowledge_bag" where the model has them); they sum to
        ``logits``.
    rule_shares (Dict[str, List[Tuple[str, float]]]): label -> [(rule id, part of
        contributions["rules"] for the label)], summing to it.
    """

    labels: Tuple[str, ...]
    logits: np.ndarray
    contributions: Dict[str, np.ndarray]
    rule_shares: Dict[str, List[Tuple[str, float]]]


def explain(doc: Doc, textcat: Any) -> Explanation:
    """Run ``textcat``'s model on ``doc`` (in eval mode, as ``predict`` does) and take
    its logits apart. Writes nothing on the doc.

    doc (Doc): the document (its text is what counts; annotations are recomputed).
    textcat: the initialized component.
    """
    featurizer = textcat.featurizer
    if featurizer is None:
        raise ValueError(Errors.E161.format(name=textcat.name))
    knowledge, annotations = featurizer.analyse(doc)
    module = torch_module(textcat.model)
    device = next(module.parameters()).device
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            out = module(**to_torch(build_inputs(textcat.model, [doc], knowledge=[knowledge]), device))
    finally:
        module.train(was_training)
    labels = tuple(textcat.labels)
    contributions = {name: part[0].float().cpu().numpy() for name, part in out.contributions.items()}
    rows = {rule_id: row for row, rule_id in enumerate(featurizer.rule_matcher.ids)} if (
        featurizer.rule_matcher is not None) else {}
    hit_rows = [rows[rule_id] for rule_id, _, _ in annotations.rule_hits if rule_id in rows]
    rules = contributions.get("rules", np.zeros(len(labels), dtype=np.float32))
    shares = _rule_shares(labels, rules, featurizer.rule_matcher, hit_rows)
    return Explanation(labels, out.logits[0].float().cpu().numpy(), contributions, shares)


def _rule_shares(labels: Sequence[str], rules: np.ndarray, matcher: Any,
                 hit_rows: List[int]) -> Dict[str, List[Tuple[str, float]]]:
    """Split each label's rule contribution among the rules that hit, in proportion
    to each rule's part of the summed label bias b (every hit counts). The model adds
    ``scale * sign(b) * log1p(|b|)``, not a sum over rules, so a rule's part is not a
    term of its own; proportional parts are the ones that add up to it."""
    if not hit_rows:
        return {}
    per_rule: Dict[int, np.ndarray] = {}
    for row in hit_rows:
        per_rule[row] = per_rule.get(row, 0.0) + matcher.label_weights[row].astype(np.float64)
    out: Dict[str, List[Tuple[str, float]]] = defaultdict(list)
    for j, label in enumerate(labels):
        voters = [(row, float(w[j])) for row, w in per_rule.items() if w[j] != 0.0]
        if not voters:
            continue
        total = sum(w for _, w in voters)
        parts = [float(rules[j]) * w / total if total else 0.0 for _, w in voters]
        # the last part takes the rounding, so the parts sum to the contribution
        parts[-1] = float(rules[j]) - sum(parts[:-1])
        out[label] = [(matcher.ids[row], part) for (row, _), part in zip(voters, parts)]
    return dict(out)


def rule_contributions(doc: Doc, textcat: Optional[object] = None) -> Dict[str, List[Tuple[str, float]]]:
    """label -> [(rule id, amount the rule added to the label's logit)] for the rules
    that hit ``doc``: the rules' contribution to the logits, split among them (see
    :func:`explain`). Without the component, RETURNS {}."""
    if textcat is None or getattr(textcat, "featurizer", None) is None:
        return {}
    return explain(doc, textcat).rule_shares


def render_explanation(doc: Doc, textcat: Optional[object] = None, *, top_n: int = 3) -> str:
    """A self-contained HTML fragment explaining ``doc``'s prediction.

    doc (Doc): processed by the component (store_routing = true for the experts).
    textcat: the component, for the logits taken apart by path and rule (optional).
    top_n (int): how many labels to list.
    RETURNS (str): HTML.
    """
    entity_at: Dict[int, Span] = {}
    for span in doc._.kb_entities or []:
        for i in range(span.start, span.end):
            entity_at[i] = span
    routing = {i: (experts, weights) for i, experts, weights in (doc._.routing or [])}
    parts: List[str] = []
    for token in doc:
        text = html.escape(token.text)
        title = []
        style = ""
        if token.i in routing:
            experts, weights = routing[token.i]
            title.append("experts " + ", ".join(f"{e}:{w:.2f}" for e, w in zip(experts, weights)))
            style = f"border-bottom:3px solid {_COLOURS[experts[0] % len(_COLOURS)]};"
        span = entity_at.get(token.i)
        if span is not None:
            title.append(f"KB {span._.kb_iri}")
            style += "background:#ffe9a8;"
        attrs = f' title="{html.escape("; ".join(title))}"' if title else ""
        parts.append(f'<span style="{style}"{attrs}>{text}</span>{html.escape(token.whitespace_)}')
    top = sorted(doc.cats.items(), key=lambda kv: -kv[1])[:top_n]
    explanation = explain(doc, textcat) if getattr(textcat, "featurizer", None) is not None else None
    label_rows = []
    for label, score in top:
        label_rows.append(f"<tr><td>{html.escape(label)}</td><td>{score:.3f}</td>{_logit_cells(explanation, label)}</tr>")
    entity_rows = [
        f"<li>{html.escape(s.text)} &rarr; {html.escape(str(s._.kb_iri))}</li>" for s in doc._.kb_entities or []
    ]
    hit_rows = [
        f"<li>{html.escape(rule_id)}: {html.escape(doc[start:end].text)}</li>"
        for rule_id, start, end in doc._.rule_hits or []
    ]
    legend = "".join(
        f'<span style="border-bottom:3px solid {c};margin-right:8px">expert {i}</span>'
        for i, c in enumerate(_COLOURS[: _n_experts(doc)])
    )
    return (
        '<div class="sparse-expert-explanation" style="font-family:sans-serif;line-height:2">'
        f'<p>{"".join(parts)}</p>'
        f"<p>{legend}</p>"
        "<table><tr><th>label</th><th>score</th><th>logit</th><th>= model paths</th><th>+ rules</th></tr>"
        f'{"".join(label_rows)}</table>'
        f'<h4>Linked entities</h4><ul>{"".join(entity_rows) or "<li>none</li>"}</ul>'
        f'<h4>Rule hits</h4><ul>{"".join(hit_rows) or "<li>none</li>"}</ul>'
        "</div>"
    )


def _logit_cells(explanation: Optional[Explanation], label: str) -> str:
    """Three cells: the logit, what each learned path added and what each rule added;
    the numbers shown add up to the logit (to the rounding of the display)."""
    if explanation is None or label not in explanation.labels:
        return "<td>-</td><td>-</td><td>-</td>"
    j = explanation.labels.index(label)
    paths = ", ".join(f"{_PATH_NAMES[name]} {part[j]:+.2f}" for name, part in explanation.contributions.items()
                      if name != "rules")
    shares = explanation.rule_shares.get(label, [])
    rules = ", ".join(f"{html.escape(rule_id)} {value:+.2f}" for rule_id, value in shares) or "-"
    return f"<td>{explanation.logits[j]:+.2f}</td><td>{paths}</td><td>{rules}</td>"


def _n_experts(doc: Doc) -> int:
    return 1 + max((e for _, experts, _ in (doc._.routing or []) for e in experts), default=-1)


def expert_load(docs: Iterable[Doc], n_experts: Optional[int] = None) -> Tuple[List[str], np.ndarray]:
    """Routing weight per expert, summed over the tokens of the docs predicted as each
    label and normalised per label. RETURNS (labels, (n_labels, n_experts) array)."""
    sums: Dict[str, np.ndarray] = {}
    docs = list(docs)
    n = n_experts or max((_n_experts(doc) for doc in docs), default=0)
    for doc in docs:
        if not doc.cats or not doc._.routing:
            continue
        label = max(doc.cats, key=lambda name: doc.cats[name])
        row = sums.setdefault(label, np.zeros(n, dtype=np.float64))
        for _, experts, weights in doc._.routing:
            np.add.at(row, experts, weights)
    labels = sorted(sums)
    matrix = np.stack([sums[label] / max(sums[label].sum(), 1e-12) for label in labels]) if labels else np.zeros((0, n))
    return labels, matrix


def plot_expert_load(docs: Iterable[Doc], path: Union[str, Path], *, n_experts: Optional[int] = None) -> Path:
    """Write a PNG heat map of :func:`expert_load` to ``path`` (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, matrix = expert_load(docs, n_experts)
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * max(matrix.shape[1], 1), 1.0 + 0.45 * max(len(labels), 1)))
    image = ax.imshow(matrix, cmap="viridis", aspect="auto", vmin=0.0)
    ax.set_xticks(range(matrix.shape[1]), [str(e) for e in range(matrix.shape[1])])
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("expert")
    ax.set_ylabel("predicted label")
    ax.set_title("share of routing weight")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


__all__ = ["Explanation", "expert_load", "explain", "plot_expert_load", "render_explanation",
           "rule_contributions"]
