"""`sparse-expert kb ...`: compile RDF into a knowledge base, inspect it, look up aliases.

Thin wrappers over `spacy_sparse_expert.kb.compile.import_rdf` and `KnowledgeBase`.
"""
from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Iterable, Optional

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..errors import Errors, KBImportError, SparseExpertError
from ._text import literal, safe_json

if TYPE_CHECKING:  # the kb modules load on first use, inside the commands
    from ..kb.phases import Phase

app = typer.Typer(help="Compile RDF knowledge graphs into a KB directory and inspect it.", no_args_is_help=True)

PREFIXES = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "owl": "http://www.w3.org/2002/07/owl#",
    "skos": "http://www.w3.org/2004/02/skos/core#",
    "schema": "http://schema.org/",
    "foaf": "http://xmlns.com/foaf/0.1/",
    "dc": "http://purl.org/dc/elements/1.1/",
    "dcterms": "http://purl.org/dc/terms/",
    "wdt": "http://www.wikidata.org/prop/direct/",
}


def expand_iri(value: str) -> str:
    """`rdfs:label` -> full IRI for the prefixes in PREFIXES; `<...>` brackets dropped."""
    value = value.strip()
    if value.startswith("<") and value.endswith(">"):
        return value[1:-1]
    prefix, sep, local = value.partition(":")
    if sep and prefix in PREFIXES and not local.startswith("//"):
        return PREFIXES[prefix] + local
    return value


def _fail(err: Exception | str) -> None:
    """Print the error (no traceback) and exit 1. Messages quote file content, so control
    characters are shown escaped rather than sent to the terminal."""
    Console(stderr=True).print(literal(err, style="bold red", multiline=True))
    raise typer.Exit(code=1)


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def _size(text: str, key: str) -> int:
    """`64G` -> bytes (binary units; `64GiB`, `64gb`, plain numbers too). Raises E094."""
    found = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)(?:i?b)?\s*", text, flags=re.IGNORECASE)
    if found is None:
        raise KBImportError(Errors.E094.format(key=key, value=text, reason="pass a number of bytes, e.g. 64G or 500M"))
    return int(found.group(1)) * _UNITS[found.group(2).lower()]


def _description_predicates(given: Optional[list[str]], default: tuple[str, ...]) -> tuple[str, ...]:
    """--description-predicate values as IRIs; none given: the default; 'none': no descriptions."""
    if not given:
        return default
    return tuple(expand_iri(p) for p in given if p.strip().lower() != "none")


class _ImportProgress:
    """The live line of `kb import` names the step running now (while parsing: the
    triples read and their rate); each step that ends leaves a line with its counts and
    seconds, so a long compile step never looks like a stalled parse."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("parse", total=None, detail="")
        self.parse_start = time.perf_counter()

    def triples(self, n: int) -> None:
        rate = n / max(time.perf_counter() - self.parse_start, 1e-9)
        self.progress.update(self.task, detail=f"{n:>12,} triples  {rate:>10,.0f} triples/s")

    def phase(self, phase: "Phase") -> None:
        if phase.seconds is None:
            if phase.name == "parse":
                self.parse_start = time.perf_counter()
            self.progress.update(self.task, description=phase.name, detail="")
            return
        counts = ", ".join(f"{key.replace('_', ' ')} {value:,}" for key, value in phase.counts.items())
        self.progress.console.print(literal(f"{phase.name:<15} {phase.seconds:8.2f} s  {counts}"))


@app.command("import")
def import_cmd(
    sources: Annotated[Optional[list[Path]], typer.Argument(
        help="RDF files (.ttl .nt .nq .trig .jsonld .rdf/.owl/.xml .n3, optionally .gz/.bz2/.xz), "
             "directories of them, or Oxigraph store directories. Pipes, FIFOs, /dev/stdin and '-' "
             "(standard input) work too, with --format; their compression is recognised.",
        show_default=False)] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="KB directory to write (replaced atomically).")] = ...,
    fmt: Annotated[Optional[str], typer.Option("--format", "-f", help="Format of every file, overriding extensions: "
                                               "turtle, n-triples, n-quads, trig, json-ld, rdf/xml, n3.")] = None,
    sparql: Annotated[Optional[str], typer.Option("--sparql", help="SPARQL endpoint URL to read with CONSTRUCT.")] = None,
    query: Annotated[Optional[Path], typer.Option("--query", help="File with the CONSTRUCT query for --sparql.")] = None,
    label_predicate: Annotated[Optional[list[str]], typer.Option(
        "--label-predicate", help="Label predicate IRI or prefixed name (repeatable). Default: rdfs:label, "
                                  "skos:prefLabel, skos:altLabel, schema:name, foaf:name.")] = None,
    description_predicate: Annotated[Optional[list[str]], typer.Option(
        "--description-predicate", help="Description predicate IRI or prefixed name (repeatable, most preferred "
                                        "first; 'none' keeps no descriptions). One description per entity, stored "
                                        "but never an alias. Default: schema:description, rdfs:comment, "
                                        "skos:definition, dcterms:description.")] = None,
    language: Annotated[Optional[list[str]], typer.Option(
        "--language", help="Label and description language (repeatable; 'en' also matches en-GB; '*' = any). "
                           "Untagged ones are always kept. Default: en.")] = None,
    type_predicate: Annotated[str, typer.Option("--type-predicate", help="Predicate giving an entity's class.")] = "rdf:type",
    subclass_predicate: Annotated[str, typer.Option("--subclass-predicate",
                                                    help="Predicate of the class hierarchy (closure is taken).")] = "rdfs:subClassOf",
    relation: Annotated[Optional[list[str]], typer.Option(
        "--relation", help="Relation predicate to keep (repeatable). Default: every predicate between entities.")] = None,
    base: Annotated[Optional[str], typer.Option("--base", help="Base IRI for relative IRIs.")] = None,
    max_candidates: Annotated[int, typer.Option("--max-candidates", min=1, help="Most entities kept per alias.")] = 30,
    timeout: Annotated[float, typer.Option("--timeout", help="SPARQL: seconds for the whole request, from "
                                           "connecting to the last byte of the answer.")] = 60.0,
    max_response_bytes: Annotated[Optional[str], typer.Option(
        "--max-response-bytes", help="SPARQL: largest answer accepted, a number or with K/M/G/T (binary). "
                                     "Default: 4G.", show_default=False)] = None,
    max_triples: Annotated[Optional[int], typer.Option(
        "--max-triples", help="Budget: most triples read over all sources, repeats included. "
                              "Default: 200000000.", show_default=False)] = None,
    max_bytes: Annotated[Optional[str], typer.Option(
        "--max-bytes", help="Budget: most bytes read from one source after decompression, a number "
                            "or with K/M/G/T (binary). Default: 64G.", show_default=False)] = None,
    max_xml_depth: Annotated[Optional[int], typer.Option(
        "--max-xml-depth", help="Deepest element nesting accepted in RDF/XML. Default: 2000.",
        show_default=False)] = None,
    engine: Annotated[str, typer.Option("--engine", help="Parser: oxigraph (fast) or rdflib.")] = "oxigraph",
    graph_engine: Annotated[str, typer.Option("--graph-engine", help="Graph features: fast or networkx.")] = "fast",
    alias_index: Annotated[str, typer.Option(
        "--alias-index", help="Also write the aliases tokenized by spaCy's blank tokenizer of this language (what "
                              "a pipeline's linker uses), so that pipelines load without tokenizing them; 'none' "
                              "writes none (then the import does not load spaCy).")] = "en",
    store: Annotated[Optional[Path], typer.Option(
        "--store", help="Also load every triple read into an Oxigraph store at this directory (pyoxigraph's "
                        "bulk loader, same single pass), queryable with SPARQL by pyoxigraph or `oxigraph serve "
                        "--location DIR`. Written beside it and swapped in after the KB; a new, empty or earlier "
                        "--store directory only.", show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
) -> None:
    """Compile RDF sources into a knowledge base directory.

    Entities are IRIs with a label (in the chosen languages or untagged) that are not
    classes (objects of rdf:type, in rdfs:subClassOf) or properties. Nothing is written
    unless the whole import succeeds; a previous KB at --output stays until the new one
    is complete.
    """
    from ..kb.compile import DEFAULT_LABEL_PREDICATES, import_rdf
    from ..kb.import_options import DEFAULT_DESCRIPTION_PREDICATES
    from ..kb.import_options import import_options

    budgets = {"max_triples": max_triples, "max_xml_depth": max_xml_depth}
    try:
        if max_bytes is not None:
            budgets["max_bytes"] = _size(max_bytes, "max_bytes (--max-bytes)")
        if max_response_bytes is not None:
            budgets["max_response_bytes"] = _size(max_response_bytes, "max_response_bytes (--max-response-bytes)")
    except SparseExpertError as err:
        _fail(err)
    options: dict[str, Any] = {
        "label_predicates": tuple(expand_iri(p) for p in label_predicate) if label_predicate else DEFAULT_LABEL_PREDICATES,
        "description_predicates": _description_predicates(description_predicate, DEFAULT_DESCRIPTION_PREDICATES),
        "languages": tuple(language) if language else ("en",),
        "type_predicate": expand_iri(type_predicate),
        "subclass_predicate": expand_iri(subclass_predicate),
        "relations": tuple(expand_iri(r) for r in relation) if relation else None,
        "base": base, "format": fmt, "max_candidates": max_candidates, "timeout": timeout,
        "engine": engine, "graph_engine": graph_engine,
        **{key: value for key, value in budgets.items() if value is not None},
    }
    try:
        import_options(**options)  # every value checked before anything is read or written
    except SparseExpertError as err:
        _fail(err)
    console = Console(stderr=True, quiet=quiet, markup=False)  # paths and KB text are not markup
    try:
        query_text = query.read_text(encoding="utf8") if query else None
    except (OSError, UnicodeDecodeError) as err:
        _fail(Errors.E013.format(path=query, reason=err))
    start = time.perf_counter()
    with Progress(SpinnerColumn(), TextColumn("[bold]{task.description:<15}"), TextColumn("{task.fields[detail]}"),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        shown = _ImportProgress(progress)
        try:
            kb = import_rdf(sources or [], output, sparql=sparql, query=query_text,
                            progress=shown.triples, phase=shown.phase, store=store,
                            alias_index_lang=None if alias_index.lower() == "none" else alias_index, **options)
        except SparseExpertError as err:
            progress.stop()
            _fail(err)
        except OSError as err:  # writing the KB: permissions, disk full, ...
            progress.stop()
            target = output.absolute()
            _fail(Errors.E062.format(path=target, reason=err.strerror or err, parent=target.parent))
    elapsed = time.perf_counter() - start
    counts, timing = kb.meta["counts"], kb.meta["timing"]
    table = Table(title=literal(f"Knowledge base written to {output}"), show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    for key in ("triples", "entities", "aliases", "alias_links", "types", "type_links", "predicates", "relations",
                "descriptions"):
        table.add_row(key.replace("_", " "), f"{counts[key]:,}")
    table.add_row("parse", f"{timing['parse_seconds']:.2f} s ({timing['triples_per_second']:,} triples/s)")
    table.add_row("total", f"{elapsed:.2f} s")
    console.print(table)


@app.command("info")
def info_cmd(
    kb_dir: Annotated[Path, typer.Argument(help="A KB directory.", show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print meta.json as JSON.")] = False,
) -> None:
    """Show what a KB directory holds: counts, sources, options."""
    from ..kb.knowledge_base import KnowledgeBase

    try:
        kb = KnowledgeBase.from_disk(kb_dir)
    except SparseExpertError as err:
        _fail(err)
    if as_json:
        typer.echo(safe_json(kb.meta, indent=2))
        return
    # Every cell is literal Text: meta.json quotes paths, URLs and options from outside
    console = Console(markup=False, emoji=False, highlight=False)
    table = Table(title=literal(f"Knowledge base {kb_dir}"), show_header=False)
    table.add_column(style="bold")
    table.add_column()
    meta = kb.meta
    table.add_row("format version", literal(meta.get("format_version")))
    table.add_row("created by", literal(meta.get("created_by", "?")))
    for key, value in meta.get("counts", {}).items():
        table.add_row(literal(str(key).replace("_", " ")), literal(f"{value:,}" if isinstance(value, int) else value))
    for source in meta.get("sources", []):
        where = source.get("path") or source.get("url")
        extra = f" sha256 {str(source['sha256'])[:12]}..." if "sha256" in source else ""
        table.add_row(literal(f"source ({source.get('kind', '?')})"), literal(f"{where}{extra}"))
    table.add_row("graph features", literal(", ".join(map(str, kb.feature_names))))
    table.add_row("languages", literal(", ".join(map(str, meta.get("options", {}).get("languages", [])))))
    console.print(table)


@app.command("lookup")
def lookup_cmd(
    kb_dir: Annotated[Path, typer.Argument(help="A KB directory.", show_default=False)],
    text: Annotated[str, typer.Argument(help="Alias to look up (normalised as the KB does, accents folded: "
                                             "\"Sao Paulo\" finds \"São Paulo\"), or an entity IRI.",
                                        show_default=False)],
    as_json: Annotated[bool, typer.Option("--json", help="Print the candidates as JSON.")] = False,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Most candidates shown.")] = 10,
) -> None:
    """List the entities TEXT may refer to: IRI, label, description, types, prior, graph features."""
    from ..kb.knowledge_base import KnowledgeBase

    try:
        kb = KnowledgeBase.from_disk(kb_dir)
    except SparseExpertError as err:
        _fail(err)
    if text in kb:
        found = [(kb.entity_id(text), 1.0)]
    else:
        found = [(c.entity_id, c.prior) for c in kb.candidates(text)]
    rows = [{**kb.describe(e), "prior": round(prior, 6)} for e, prior in found[:limit]]
    if as_json:
        typer.echo(safe_json({"query": text, "candidates": rows}, indent=2))
        return
    # Labels and IRIs come from the RDF: literal Text, neither markup nor terminal codes
    console = Console(markup=False, emoji=False, highlight=False)
    if not rows:
        console.print(literal(f"No entity has the alias {text!r}."))
        return
    table = Table(title=literal(f"Candidates for {text!r}"))
    described = any(row["description"] for row in rows)  # no empty column for a KB without descriptions
    for col in ("prior", "label", *(("description",) if described else ()), "IRI", "types", "degree", "pagerank"):
        table.add_column(col)
    names = type_names(t for row in rows for t in row["types"])
    for row in rows:
        feats = row["graph_features"]
        table.add_row(f"{row['prior']:.3f}", literal(row["label"]),
                      *((literal(row["description"]),) if described else ()), literal(row["iri"]),
                      literal(", ".join(names[t] for t in row["types"])),
                      f"{feats.get('degree', 0):.0f}", f"{feats.get('pagerank', 0):.2e}")
    console.print(table)


@app.command("export-spacy")
def export_spacy_cmd(
    kb_dir: Annotated[Path, typer.Argument(help="A KB directory.", show_default=False)],
    output: Annotated[Path, typer.Argument(help="Directory to write spaCy's KB to (replaced atomically).",
                                           show_default=False)],
    vectors: Annotated[str, typer.Option("--vectors", help="Entity vectors: graph (the KB's graph features "
                                         "and a constant 1) or zeros (placeholders).")] = "graph",
    vector_length: Annotated[Optional[int], typer.Option(
        "--vector-length", help="Length of zeros vectors. Default: 64.", show_default=False)] = None,
) -> None:
    """Write the KB as spaCy's InMemoryLookupKB, for spaCy's own entity_linker.

    Entities (IRIs) with their degree as frequency, entity vectors, and every alias (as
    written and normalised) with the KB's priors. Load it with `spacy.KBFromFile.v1` or
    `InMemoryLookupKB.from_disk`. spaCy is loaded; torch is not.
    """
    from ..kb.spacy_kb import export_spacy_kb

    try:
        exported = export_spacy_kb(kb_dir, output, vectors=vectors, vector_length=vector_length)
    except SparseExpertError as err:
        _fail(err)
    except OSError as err:
        target = output.absolute()
        _fail(Errors.E245.format(path=target, reason=err.strerror or err, parent=target.parent))
    Console(markup=False, emoji=False, highlight=False).print(literal(
        f"spaCy KB written to {output}: {exported.get_size_entities():,} entities, "
        f"{exported.get_size_aliases():,} aliases, vectors of length {exported.entity_vector_length}"))


def type_names(iris: Iterable[str]) -> dict[str, str]:
    """A short name per type IRI that no other IRI in `iris` shares: the fewest trailing
    path segments that tell it apart (`.../type/location/location` and `.../type/location`
    become `location/location` and `type/location`, not `location` twice); the whole IRI
    when no suffix is unique."""
    unique = list(dict.fromkeys(iris))
    segments = {iri: [part for part in re.split(r"[/#]", iri) if part] for iri in unique}
    names: dict[str, str] = {}
    for iri in unique:
        own = segments[iri]
        names[iri] = iri
        for k in range(1, len(own)):  # all segments: the IRI itself reads better
            if not any(other != iri and segments[other][-k:] == own[-k:] for other in unique):
                names[iri] = "/".join(own[-k:])
                break
    return names
