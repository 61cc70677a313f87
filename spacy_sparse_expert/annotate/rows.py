"""Annotated docs -> the rows of one output shard, kept as columns, and the bytes of the
shard's file (Parquet or JSONL).

Each row: row (0-based input line or row), id, cats (label -> score), entities (linked
spans: IRI, token start/end, character start/end, label, text), rule_hits (rule, token
start/end), error (why the document was not annotated; null when it was).

The rows are gathered as columns (a list per field; the entities of all rows as one flat
list of integers and a list of texts, the rule hits as tuples, with offsets saying whose
they are) and turned into Arrow arrays at once: a dict per row and per entity, converted
by ``pa.Table.from_pylist``, cost about a tenth of the pipeline's own time on short
documents (2-3 sentences, ~5 entities); a tuple per entity, transposed in Python, still
cost 2-5 microseconds a document more than the flat list that numpy splits. The
shard's bytes are made where the documents were annotated (in a Ray actor, or in the
local process), so the driver only writes them to disk, and both engines write the same
bytes by construction.
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..features.annotations import SPANS_KEY, rule_hits_of
from .reader import Record

Row = Dict[str, Any]
# (row, id, message) of a document that was not annotated
RowError = Tuple[int, Optional[str], str]

_ENTITY_FIELDS = ("iri", "start", "end", "start_char", "end_char", "label", "text")
_HIT_FIELDS = ("rule", "start", "end")
# per entity in ShardColumns.entity_ints: kb_id hash, label hash, start, end, start_char, end_char
_SPAN_INTS = 6


def output_schema() -> Any:
    """The Arrow schema of the Parquet shards."""
    import pyarrow as pa

    entity = pa.struct([("iri", pa.string()), ("start", pa.int32()), ("end", pa.int32()),
                        ("start_char", pa.int32()), ("end_char", pa.int32()), ("label", pa.string()),
                        ("text", pa.string())])
    hit = pa.struct([("rule", pa.string()), ("start", pa.int32()), ("end", pa.int32())])
    return pa.schema([("row", pa.int64()), ("id", pa.string()), ("cats", pa.map_(pa.string(), pa.float64())),
                      ("entities", pa.list_(entity)), ("rule_hits", pa.list_(hit)), ("error", pa.string())])


def doc_row(record: Record, doc: Any) -> Row:
    """The output row of an annotated document, as a dict."""
    columns = ShardColumns()
    columns.add_doc(record, doc)
    return columns.rows()[0]


def error_row(record: Record, error: str) -> Row:
    """The output row of a document that was not annotated, as a dict."""
    return {"row": record.row, "id": record.id, "cats": None, "entities": [], "rule_hits": [], "error": error}


class ShardColumns:
    """The rows of one shard, added in output order, as columns. An entity's IRI and
    label stay string-store hashes until the end; a rule hit is one tuple."""

    def __init__(self) -> None:
        self.row: List[int] = []
        self.id: List[Optional[str]] = []
        self.error: List[Optional[str]] = []
        # cats: labels and scores of all rows, row i's in [cat_offsets[i], cat_offsets[i + 1])
        self.cat_offsets: List[int] = [0]
        self.cat_labels: List[str] = []
        self.cat_scores: List[float] = []
        # the entities of all rows: _SPAN_INTS ints each, flat (one list, not a tuple per
        # entity: numpy turns it into columns at once), and each one's text
        self.entity_ints: List[int] = []
        self.entity_texts: List[str] = []
        self.entity_offsets: List[int] = [0]
        self.hits: List[Tuple[str, int, int]] = []
        self.hit_offsets: List[int] = [0]
        self._strings: Any = None  # the pipeline's StringStore, for the hashes

    def __len__(self) -> int:
        return len(self.row)

    def add_doc(self, record: Record, doc: Any) -> None:
        self.row.append(record.row)
        self.id.append(record.id)
        self.error.append(None)
        cats = doc.cats
        self.cat_labels.extend(cats)
        self.cat_scores.extend(map(float, cats.values()))
        self.cat_offsets.append(len(self.cat_labels))
        spans = doc.spans.get(SPANS_KEY)
        if spans:
            self._strings = doc.vocab.strings
            add_ints, add_text = self.entity_ints.extend, self.entity_texts.append
            # a span's text is its characters' slice of the doc's text, which is the record's
            # (spaCy's tokenizer keeps every character); Span.text would join its tokens
            text = record.text if record.text is not None else doc.text
            for span in spans:
                start_char, end_char = span.start_char, span.end_char
                add_ints((span.kb_id, span.label, span.start, span.end, start_char, end_char))
                add_text(text[start_char:end_char])
        self.entity_offsets.append(len(self.entity_texts))
        self.hits.extend(rule_hits_of(doc))
        self.hit_offsets.append(len(self.hits))

    def add_error(self, record: Record, error: str) -> None:
        self.row.append(record.row)
        self.id.append(record.id)
        self.error.append(error)
        self.cat_offsets.append(len(self.cat_labels))
        self.entity_offsets.append(len(self.entity_texts))
        self.hit_offsets.append(len(self.hits))

    def errors(self) -> List[RowError]:
        return [(row, id_, error) for row, id_, error in zip(self.row, self.id, self.error) if error is not None]

    def _entities(self) -> Tuple[List[str], np.ndarray, List[np.ndarray]]:
        """(names, which name each entity's IRI and label is (E, 2), its start, end,
        start_char and end_char as int32 columns): each distinct hash is looked up once (a
        shard repeats IRIs and labels). Numpy only: a JSONL shard needs no pyarrow."""
        ints = np.array(self.entity_ints, dtype=np.uint64).reshape(-1, _SPAN_INTS)
        hashes, where = np.unique(ints[:, :2], return_inverse=True)
        names = [self._strings[key] for key in hashes.tolist()]
        return names, where.reshape(-1, 2), [ints[:, i].astype(np.int32) for i in range(2, _SPAN_INTS)]

    def _hit_columns(self) -> List[List[Any]]:
        return [list(column) for column in zip(*self.hits)] if self.hits else [[] for _ in _HIT_FIELDS]

    def rows(self) -> List[Row]:
        """The rows as dicts (the form of `read_output` and of a JSONL shard's lines)."""
        names, where, offsets = self._entities()
        iris, labels = ([names[i] for i in column] for column in where.T.tolist())
        entities = list(zip(iris, *(column.tolist() for column in offsets), labels, self.entity_texts))
        out = []
        for i, (row, id_, error) in enumerate(zip(self.row, self.id, self.error)):
            c0, c1 = self.cat_offsets[i], self.cat_offsets[i + 1]
            out.append({
                "row": row,
                "id": id_,
                "cats": None if error is not None else dict(zip(self.cat_labels[c0:c1], self.cat_scores[c0:c1])),
                "entities": [dict(zip(_ENTITY_FIELDS, values))
                             for values in entities[self.entity_offsets[i]:self.entity_offsets[i + 1]]],
                "rule_hits": [dict(zip(_HIT_FIELDS, values))
                              for values in self.hits[self.hit_offsets[i]:self.hit_offsets[i + 1]]],
                "error": error,
            })
        return out

    def table(self) -> Any:
        """The rows as a pyarrow Table of `output_schema()`."""
        import pyarrow as pa

        schema = output_schema()
        names, where, offsets = self._entities()
        name_array = pa.array(names, pa.string())
        entities = [name_array.take(where[:, 0]), *offsets, name_array.take(where[:, 1]), self.entity_texts]
        failed = pa.array([error is not None for error in self.error], pa.bool_())
        cats = pa.MapArray.from_arrays(pa.array(self.cat_offsets, pa.int32()), pa.array(self.cat_labels, pa.string()),
                                       pa.array(self.cat_scores, pa.float64()), type=schema.field("cats").type,
                                       mask=failed)
        return pa.Table.from_arrays([
            pa.array(self.row, pa.int64()),
            pa.array(self.id, pa.string()),
            cats,
            _list_of_structs(self.entity_offsets, entities, schema.field("entities").type),
            _list_of_structs(self.hit_offsets, self._hit_columns(), schema.field("rule_hits").type),
            pa.array(self.error, pa.string()),
        ], schema=schema)

    def encode(self, fmt: str) -> bytes:
        """The bytes of the shard's file: "parquet" or "jsonl" (one JSON object a line)."""
        if fmt == "jsonl":
            return b"".join(json.dumps(row, ensure_ascii=False).encode("utf8") + b"\n" for row in self.rows())
        import pyarrow as pa
        import pyarrow.parquet as pq

        sink = pa.BufferOutputStream()
        pq.write_table(self.table(), sink)
        return sink.getvalue().to_pybytes()


def _list_of_structs(offsets: List[int], columns: List[Any], list_type: Any) -> Any:
    """A list<struct> array: row i's structs are rows [offsets[i], offsets[i + 1]) of
    `columns` (Python lists, numpy arrays or pyarrow arrays, one per struct field)."""
    import pyarrow as pa

    struct_type = list_type.value_type
    fields = [struct_type.field(i) for i in range(struct_type.num_fields)]
    values = pa.StructArray.from_arrays([column if isinstance(column, pa.Array) else pa.array(column, field.type)
                                         for column, field in zip(columns, fields)], fields=fields)
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), values, type=list_type)


__all__ = ["Row", "RowError", "ShardColumns", "doc_row", "error_row", "output_schema"]
