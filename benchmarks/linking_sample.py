"""Draw the mentions of the hand-checked linking set (benchmarks/data/linking_set.jsonl).

    python benchmarks/linking_sample.py --out benchmarks/work/linking_candidates.jsonl

Deterministic: BBC *train* documents (never dev or test) in id order, the shipped KB, the
alias linker's mentions before disambiguation (`AliasLinker.mentions`, a blank English
tokenizer), then `random.Random(SEED)` shuffles each pool and the draw keeps at most one
mention per document and two per surface (lowercased), N_AMBIGUOUS mentions with two or
more candidates and N_UNAMBIGUOUS with one. The output holds, per mention, the doc id, char
offsets, surface, the sentence-ish context and every candidate (IRI, label, prior and the
Wikidata description from ../shared/data/fb15k237/entity2wikidata.json) for a person to
check; the checked file adds `gold` and `note` (see benchmarks/data/README.md).
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any, Dict, List

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SEED = 11
N_AMBIGUOUS = 70
N_UNAMBIGUOUS = 30
MAX_PER_SURFACE = 2
KB_DIR = REPO / "benchmarks" / "work" / "kb"
TRAIN = REPO / "benchmarks" / "work" / "corpus" / "train.jsonl"
WIKIDATA = REPO.parent / "shared" / "data" / "fb15k237" / "entity2wikidata.json"
FB = "http://rdf.freebase.com/ns/"


def descriptions() -> Dict[str, str]:
    """Freebase IRI -> Wikidata description (empty where the raw data has none)."""
    if not WIKIDATA.exists():
        return {}
    raw = json.loads(WIKIDATA.read_text(encoding="utf8"))
    return {FB + mid.lstrip("/").replace("/", "."): (v.get("description") or "") for mid, v in raw.items()}


def context(text: str, start: int, end: int, width: int = 160) -> str:
    """The mention in [[ ]] with up to `width` characters either side, on one line."""
    left = text[max(0, start - width) : start]
    right = text[end : end + width]
    return " ".join(f"{left}[[{text[start:end]}]]{right}".split())


def all_mentions(kb_dir: Path, train: Path) -> List[Dict[str, Any]]:
    import spacy

    from spacy_sparse_expert.features.linker import AliasLinker
    from spacy_sparse_expert.kb.knowledge_base import KnowledgeBase

    kb = KnowledgeBase.from_disk(kb_dir)
    nlp = spacy.blank("en")
    linker = AliasLinker(nlp.vocab, kb)
    docs = sorted((json.loads(line) for line in train.open(encoding="utf8")), key=lambda d: d["id"])
    out = []
    for rec in docs:
        doc = nlp.make_doc(rec["text"])
        for start, end, (ents, pri), _ in linker.mentions(doc):
            span = doc[start:end]
            out.append({
                "doc_id": rec["id"], "start_char": span.start_char, "end_char": span.end_char, "text": span.text,
                "candidates": [{"iri": kb.entities[e], "label": kb.labels[e], "prior": round(float(p), 4)}
                               for e, p in zip(ents.tolist(), pri.tolist())],
                "_doc_text": rec["text"],
            })
    return out


def draw(mentions: List[Dict[str, Any]], seed: int = SEED) -> List[Dict[str, Any]]:
    """At most one mention per doc and MAX_PER_SURFACE per surface, ambiguous first."""
    rng = random.Random(seed)
    amb = [m for m in mentions if len(m["candidates"]) > 1]
    una = [m for m in mentions if len(m["candidates"]) == 1]
    rng.shuffle(amb)
    rng.shuffle(una)
    used_docs: set = set()
    per_surface: Dict[str, int] = {}
    picked: List[Dict[str, Any]] = []
    for pool, n in ((amb, N_AMBIGUOUS), (una, N_UNAMBIGUOUS)):
        got = 0
        for m in pool:
            key = m["text"].lower()
            if got == n:
                break
            if m["doc_id"] in used_docs or per_surface.get(key, 0) >= MAX_PER_SURFACE:
                continue
            used_docs.add(m["doc_id"])
            per_surface[key] = per_surface.get(key, 0) + 1
            picked.append(m)
            got += 1
    picked.sort(key=lambda m: (m["doc_id"], m["start_char"]))
    return picked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "work" / "linking_candidates.jsonl")
    ap.add_argument("--seed", type=int, default=SEED)
    args = ap.parse_args()
    mentions = all_mentions(KB_DIR, TRAIN)
    desc = descriptions()
    picked = draw(mentions, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", encoding="utf8") as fh:
        for m in picked:
            text = m.pop("_doc_text")
            m["context"] = context(text, m["start_char"], m["end_char"])
            for c in m["candidates"]:
                c["description"] = desc.get(c["iri"], "")
            fh.write(json.dumps(m, ensure_ascii=False) + "\n")
    n_amb = sum(len(m["candidates"]) > 1 for m in picked)
    print(f"{len(mentions)} mentions in train; drew {len(picked)} ({n_amb} ambiguous) -> {args.out}")


if __name__ == "__main__":
    main()
