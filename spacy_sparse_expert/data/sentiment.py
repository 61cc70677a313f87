"""The fixed split of the Sentiment Labelled Sentences that every benchmark uses, written as
DocBin and JSONL files.

The corpus (Kotzias et al., KDD 2015; UCI dataset 331, CC BY 4.0): 1,000 review sentences
each from amazon.com, imdb.com and yelp.com, one ``sentence<TAB>0|1`` per line. It is not
a PyPI package, so the folder holding the three files is passed in (in this project
``../shared/data/sentiment_sentences``). The split reproduces
``shared/bench/sentiment_split.py`` exactly (same sentences, same order).
"""
from __future__ import annotations

import random
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

from ..errors import Errors, SparseExpertError
from .convert import Record, records_to_docs, write_docbin, write_jsonl

SENTIMENT_LABELS: Tuple[str, ...] = ("negative", "positive")
SOURCES: Tuple[str, ...] = ("amazon_cells", "imdb", "yelp")
_SCORES = {"0": "negative", "1": "positive"}
SENTIMENT_SEED = 20261129
SMALL_PER_SOURCE_LABEL = 16
SPLIT_NAMES = ("train", "dev", "test", "train_small")


def load_sentiment(data_dir: Union[str, Path]) -> List[Record]:
    """Read the three files in the order amazon_cells, imdb, yelp, dropping exact duplicate
    sentences (the first occurrence stays; 18 are dropped, none with a conflicting label).

    data_dir (str | Path): the folder with {source}_labelled.txt.
    RETURNS (List[dict]): {"id": "source/line", "text", "label", "source"} per sentence.
    """
    docs: List[Record] = []
    seen = set()
    for source in SOURCES:
        path = Path(data_dir) / f"{source}_labelled.txt"
        if not path.is_file():
            raise SparseExpertError(Errors.E210.format(path=path))
        for n, line in enumerate(path.read_text(encoding="utf8").splitlines(), 1):
            if not line.strip():
                continue
            text, tab, score = line.rpartition("\t")
            if not tab or score.strip() not in _SCORES:
                raise SparseExpertError(Errors.E211.format(path=path, line=n, value=line[:80]))
            text = text.strip()
            if text in seen:
                continue
            seen.add(text)
            docs.append({"id": f"{source}/{n}", "text": text, "label": _SCORES[score.strip()], "source": source})
    return docs


def sentiment_split(data_dir: Union[str, Path]) -> Dict[str, List[Record]]:
    """The fixed split: shuffle with random.Random(20261129); first 20% test, next 10% dev,
    the rest train; train_small = the first 16 train sentences of each (source, label).

    RETURNS (Dict[str, List[dict]]): "train" (2,088), "dev" (298), "test" (596), "train_small" (96).
    """
    docs = load_sentiment(data_dir)
    random.Random(SENTIMENT_SEED).shuffle(docs)
    n = len(docs)
    test, dev, train = docs[: n // 5], docs[n // 5 : n // 5 + n // 10], docs[n // 5 + n // 10 :]
    small: List[Record] = []
    taken: Dict[Tuple[str, str], int] = {}
    for d in train:
        key = (str(d["source"]), str(d["label"]))
        if taken.get(key, 0) < SMALL_PER_SOURCE_LABEL:
            taken[key] = taken.get(key, 0) + 1
            small.append(d)
    return {"train": train, "dev": dev, "test": test, "train_small": small}


def write_sentiment(
    data_dir: Union[str, Path], output_dir: Union[str, Path], *, jsonl: bool = True,
    splits: Sequence[str] = SPLIT_NAMES,
) -> Dict[str, int]:
    """Write the split as {split}.spacy (doc.cats one-hot over negative, positive;
    doc.user_data["id"] and ["source"]) and, with jsonl=True, the same .jsonl files as
    sentiment_split.py.

    RETURNS (Dict[str, int]): number of sentences per split written.
    """
    unknown = [s for s in splits if s not in SPLIT_NAMES]
    if unknown:
        raise SparseExpertError(Errors.E212.format(splits=unknown, known=list(SPLIT_NAMES)))
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = sentiment_split(data_dir)
    counts: Dict[str, int] = {}
    for name in splits:
        part = parts[name]
        docs, _, _ = records_to_docs(enumerate(part, start=1), labels=SENTIMENT_LABELS, path=f"sentiment/{name}")
        for doc, rec in zip(docs, part):
            doc.user_data["id"] = rec["id"]
            doc.user_data["source"] = rec["source"]
        counts[name] = write_docbin(docs, out / f"{name}.spacy", store_user_data=True)
        if jsonl:
            write_jsonl(part, out / f"{name}.jsonl")
    return counts


__all__ = ["SENTIMENT_LABELS", "SOURCES", "SPLIT_NAMES", "load_sentiment", "sentiment_split", "write_sentiment"]
