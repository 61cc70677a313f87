"""How much of a trained model's predictions its KB decides: the dev documents whose
predicted label changes when the routers' knowledge projections are set to zero (the
only path by which linked KB entities reach a model without rules or knowledge bag).

    python benchmarks/knowledge_effect.py benchmarks/work/models/sparse_expert-train_small-knowledgekb-seed*-gatekd25

Writes benchmarks/results/knowledge_effect_dev.json (one record per model: the
knowledge gates, the changed predictions, the load average); dev only, never test.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "benchmarks" / "results" / "knowledge_effect_dev.json"


def effect(model_dir: Path, texts: list[str]) -> dict[str, object]:
    import spacy
    import torch

    from spacy_sparse_expert.ml.architectures import torch_module

    nlp = spacy.load(model_dir)
    name = next(n for n, pipe in nlp.pipeline if hasattr(pipe, "featurizer"))
    module = torch_module(nlp.get_pipe(name).model)

    def predict() -> list[str]:
        return [max(doc.cats, key=doc.cats.get) for doc in nlp.pipe(texts)]

    gates = module.knowledge_gates()
    before = predict()
    with torch.no_grad():
        for moe in module.moe:
            if moe.router.knowledge_proj is not None:
                moe.router.knowledge_proj.weight.zero_()
    after = predict()
    return {"model": str(model_dir.relative_to(REPO) if model_dir.is_relative_to(REPO) else model_dir),
            "gates": gates, "n_docs": len(texts), "changed": sum(a != b for a, b in zip(before, after)),
            "load_average_1m": round(os.getloadavg()[0], 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("models", nargs="+", type=Path, help="spacy train output folders (model-best is read)")
    p.add_argument("--dev", type=Path, default=REPO / "benchmarks" / "work" / "corpus" / "dev.jsonl")
    p.add_argument("--out", type=Path, default=OUT)
    args = p.parse_args()
    texts = [json.loads(line)["text"] for line in args.dev.read_text(encoding="utf8").splitlines() if line.strip()]
    records = []
    for folder in args.models:
        record = effect((folder / "model-best").resolve(), texts)
        print(json.dumps(record), flush=True)
        records.append(record)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"records": records, "dev": str(args.dev.name), "python": sys.version.split()[0]},
                              indent=2) + "\n", encoding="utf8")
    tmp.replace(args.out)


if __name__ == "__main__":
    main()
