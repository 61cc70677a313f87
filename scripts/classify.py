"""Classify texts with a trained pipeline and show what the knowledge layer saw.

    python scripts/classify.py MODEL_DIR "text" ["text" ...]
"""
from __future__ import annotations

import sys

import spacy


def main(model: str, texts: list[str]) -> None:
    nlp = spacy.load(model)
    kb = next((pipe.kb for _, pipe in nlp.pipeline if getattr(pipe, "kb", None) is not None), None)

    def name(iri: str) -> str:
        return kb.label(kb.entity_id(iri)) if kb is not None else iri

    for doc in nlp.pipe(texts):
        top = sorted(doc.cats.items(), key=lambda kv: -kv[1])[:3]
        cats = ", ".join(f"{label} {score:.3f}" for label, score in top)
        spans = doc.spans.get("kb_entities", [])
        ents = ", ".join(f"{span.text} -> {name(span.kb_id_)} ({span.label_})" for span in spans)
        print(f"{doc.text[:70]!r}\n    cats: {cats}\n    linked: {ents or '-'}")


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2:])
