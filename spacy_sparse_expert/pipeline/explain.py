"""Explanations of a prediction: an HTML view of one document (linked entities, rule
hits, the experts each token went to, the top labels and what the rules added to
them) and a PNG of the expert load per predicted label.

Both need docs processed with ``store_routing = true``.
"""
from __future__ import annotations

import html
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
from spacy.tokens import Doc

# one colour per expert, repeated when there are more experts than colours
_COLOURS = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
            "#9c755f", "#bab0ac"]


def rule_contributions(doc: Doc, textcat: Optional[object] = None) -> Dict[str, List[Tuple[str, float]]]:
    """label -> [(rule id, amount added to the label's logit)] for the doc's rule hits.

    textcat: the component; its rules give each hit's label scores and its learned
    scale turns them into logit contributions. Without it, RETURNS {}.
    """
    rules = getattr(textcat, "rules", None)
    if rules is None or not doc._.rule_hits:
        return {}
    scale = 1.0
    try:
        from ..ml.architectures import torch_module

        scale = float(torch_module(textcat.model).label_bias_scale.detach().cpu()[0])  # type: ignore[attr-defined]
    except (AttributeError, IndexError):
        pass
    out: Dict[str, List[Tuple[str, float]]] = defaultdict(list)
    for rule_id, _, _ in doc._.rule_hits:
        rule = rules.get(rule_id)
        if rule is None:
            continue
        for label, value in rule.labels.items():
            out[label].append((rule_id, scale * rule.weight * value))
    return dict(out)


def render_explanation(doc: Doc, textcat: Optional[object] = None, *, top_n: int = 3) -> str:
    """A self-contained HTML fragment explaining ``doc``'s prediction.

    doc (Doc): processed by the component (store_routing = true for the experts).
    textcat: the component, for the rules' label contributions (optional).
    top_n (int): how many labels to list.
    RETURNS (str): HTML.
    """
    entity_at: Dict[int, object] = {}
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
    contributions = rule_contributions(doc, textcat)
    label_rows = []
    for label, score in top:
        added = ", ".join(f"{html.escape(r)} {v:+.2f}" for r, v in contributions.get(label, []))
        label_rows.append(f"<tr><td>{html.escape(label)}</td><td>{score:.3f}</td><td>{added or '-'}</td></tr>")
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
        "<table><tr><th>label</th><th>score</th><th>rule contributions (logit)</th></tr>"
        f'{"".join(label_rows)}</table>'
        f'<h4>Linked entities</h4><ul>{"".join(entity_rows) or "<li>none</li>"}</ul>'
        f'<h4>Rule hits</h4><ul>{"".join(hit_rows) or "<li>none</li>"}</ul>'
        "</div>"
    )


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
        label = max(doc.cats, key=doc.cats.get)
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


__all__ = ["expert_load", "plot_expert_load", "render_explanation", "rule_contributions"]
