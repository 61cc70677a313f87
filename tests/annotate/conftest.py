"""A tiny trained pipeline with a KB and rules, saved to disk, and a small corpus."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List

import pytest
from spacy.util import fix_random_seed

from spacy_sparse_expert.kb.compile import compile_kb
from spacy_sparse_expert.kb.loaders import load_kb_v1
from spacy_sparse_expert.rules.loaders import load_rules_v1

from ..pipeline.conftest import TRAIN_DATA, kb_path, make_examples, make_nlp, rules_path

# linked entities ("Chelsea", "Tony Blair"), a rule hit ("Premier League"), none of either
SENTENCES = [text for text, _ in TRAIN_DATA] + [
    "Chelsea won the Premier League again.",
    "Tony Blair met Gordon Brown in London.",
    "Nothing here is known to the KB.",
    "",
]


def build_model(path: Path) -> Path:
    """Train the tiny component for a few steps and save the pipeline to `path`."""
    fix_random_seed(0)
    nlp = make_nlp()
    kb = path.parent / "kb"
    compile_kb([kb_path()]).to_disk(kb)
    examples = make_examples(nlp)
    nlp.get_pipe("textcat").initialize(lambda: examples, nlp=nlp, kb_loader=load_kb_v1(str(kb)),
                                       rules_loader=load_rules_v1(str(rules_path())))
    optimizer = nlp.create_optimizer()
    for _ in range(3):
        nlp.update(examples, sgd=optimizer)
    nlp.to_disk(path)
    return path


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_model(tmp_path_factory.mktemp("annotate_model") / "model")


def corpus(n: int) -> List[Dict[str, Any]]:
    """`n` documents cycling through SENTENCES, ids "doc-0", "doc-1", ..."""
    return [{"id": f"doc-{i}", "text": f"{SENTENCES[i % len(SENTENCES)]} ({i})"} for i in range(n)]


def write_jsonl(path: Path, records: List[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf8")
    return path


def write_parquet(path: Path, records: List[Dict[str, Any]], row_group_size: int = 7) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(records), path, row_group_size=row_group_size)
    return path
