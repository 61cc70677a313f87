"""A small, seeded run of both components with a KB and rules: the scores after
initialize, the losses of a few updates, the scores and routing after them. Recorded
once into ``fixtures/behaviour.json`` (``python -m tests.pipeline.behaviour``) and
compared by ``test_behaviour_unchanged.py``: same weights give the same predictions,
and the same gradients give the same training run."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict

from spacy.util import fix_random_seed

from spacy_sparse_expert.kb.loaders import load_kb_v1
from spacy_sparse_expert.rules.loaders import load_rules_v1

from .conftest import TRAIN_DATA, make_examples, make_nlp, rules_path, tiny_model

FIXTURE = Path(__file__).parent / "fixtures" / "behaviour.json"
FACTORIES = ("sparse_expert_textcat", "sparse_expert_textcat_multilabel")
N_UPDATES = 5
TEXTS = [text for text, _ in TRAIN_DATA] + ["Chelsea beat Arsenal in the Premier League.", ""]


def run(factory: str, kb_dir: Path) -> Dict[str, Any]:
    fix_random_seed(0)
    exclusive = factory == "sparse_expert_textcat"
    nlp = make_nlp(factory, store_routing=True, model=tiny_model(exclusive, knowledge_bow=True))
    examples = make_examples(nlp, multilabel=not exclusive)
    textcat = nlp.get_pipe("textcat")
    textcat.initialize(lambda: examples, nlp=nlp, kb_loader=load_kb_v1(str(kb_dir)),
                       rules_loader=load_rules_v1(str(rules_path())))
    optimizer = nlp.create_optimizer()
    before = [nlp(text).cats for text in TEXTS]
    losses = []
    for _ in range(N_UPDATES):
        step: Dict[str, float] = {}
        nlp.update(examples, sgd=optimizer, losses=step)
        losses.append(step["textcat"])
    docs = list(nlp.pipe(TEXTS))
    return {"before": before, "losses": losses, "after": [doc.cats for doc in docs],
            "routing": [doc._.routing for doc in docs]}


def main() -> None:
    import tempfile

    from spacy_sparse_expert.kb.compile import compile_kb

    from .conftest import kb_path

    with tempfile.TemporaryDirectory() as tmp:
        compile_kb([kb_path()]).to_disk(tmp)
        record = {factory: run(factory, Path(tmp)) for factory in FACTORIES}
    FIXTURE.write_text(json.dumps(record, indent=1) + "\n", encoding="utf8")


if __name__ == "__main__":
    main()
