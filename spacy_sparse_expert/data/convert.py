"""Training data from JSON Lines: {"text", "label"|"labels"} records -> Docs -> DocBin.

`sparse-expert data convert` and the BBC split (data/bbc.py) write their .spacy files
through these functions; lines are read by the package's one JSONL reader (jsonl.py).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

from ..errors import Errors, SparseExpertError
from ..jsonl import json_lines, show_value

if TYPE_CHECKING:  # pragma: no cover
    from spacy.tokens import Doc
    from spacy.vocab import Vocab

Record = Dict[str, object]


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
    vocab: Optional["Vocab"] = None,
) -> Tuple[List["Doc"], List[str], bool]:
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
    docs: List["Doc"] = []
    for (_, _, cs), doc in zip(rows, nlp.tokenizer.pipe(t for _, t, _ in rows)):
        on = set(cs)
        doc.cats = {lab: float(lab in on) for lab in label_list}
        docs.append(doc)
    return docs, label_list, exclusive if exclusive is not None else True


def write_docbin(docs: Iterable["Doc"], path: Union[str, Path], *, store_user_data: bool = False) -> int:
    """Save docs (with their cats) as a DocBin file; RETURNS the number of docs."""
    from spacy.tokens import DocBin

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




__all__ = ["Record", "convert_jsonl", "read_jsonl", "records_to_docs", "write_docbin", "write_jsonl"]
