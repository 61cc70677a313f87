"""Convert FB15k-237 (OpenKE files + entity2wikidata.json) into gzipped RDF N-Triples.

    python knowledge/build_fb15k237.py ../shared/data/fb15k237 knowledge/fb15k237.nt.gz

The output is deterministic: the same inputs give the same bytes (fixed line order, gzip
header with mtime 0 and no file name). Only the standard library is used.

IRI scheme (see knowledge/README.md):
- entity  /m/0948xk                      -> http://rdf.freebase.com/ns/m.0948xk
- relation /film/actor/film./film/performance/film
                                          -> https://w3id.org/fb15k237/relation/film/actor/film./film/performance/film
- type    /film/actor                     -> https://w3id.org/fb15k237/type/film/actor
- domain  /film                           -> https://w3id.org/fb15k237/type/film

Types come from the relation paths: a Freebase property id is its type id plus one key, so
the head part of a path (before any "." that starts a mediated CVT hop) minus its last
segment is the head's type. For a mediated path "H./D/cvt/key" the tail is typed /D/key
only when /D/key is itself one of the head types (e.g. "./film/performance/film" ->
/film/film); otherwise the tail gets no type from that triple.
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import sys
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from urllib.parse import quote

FREEBASE_NS = "http://rdf.freebase.com/ns/"
BASE_NS = "https://w3id.org/fb15k237/"
RELATION_NS = BASE_NS + "relation/"
TYPE_NS = BASE_NS + "type/"
WIKIDATA_NS = "http://www.wikidata.org/entity/"

RDF_TYPE = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
RDF_PROPERTY = "http://www.w3.org/1999/02/22-rdf-syntax-ns#Property"
RDFS_CLASS = "http://www.w3.org/2000/01/rdf-schema#Class"
RDFS_LABEL = "http://www.w3.org/2000/01/rdf-schema#label"
RDFS_SUBCLASS_OF = "http://www.w3.org/2000/01/rdf-schema#subClassOf"
SKOS_ALT_LABEL = "http://www.w3.org/2004/02/skos/core#altLabel"
SCHEMA_DESCRIPTION = "http://schema.org/description"
OWL_SAME_AS = "http://www.w3.org/2002/07/owl#sameAs"

TRIPLE_FILES = ("train2id.txt", "valid2id.txt", "test2id.txt")

# Hand-written subclass links between derived types, beyond "type subClassOf its domain".
# Kept short: only links that hold for every member in Freebase's own schema and help
# map entities to news topics (a club is a sports team, a politician a person, ...).
# A link is written only when both types occur in the data.
EXTRA_SUBCLASS_OF: tuple[tuple[str, str], ...] = (
    ("/soccer/football_team", "/sports/sports_team"),
    ("/american_football/football_team", "/sports/sports_team"),
    ("/baseball/baseball_team", "/sports/sports_team"),
    ("/ice_hockey/hockey_team", "/sports/sports_team"),
    ("/sports/professional_sports_team", "/sports/sports_team"),
    ("/soccer/football_player", "/sports/pro_athlete"),
    ("/sports/pro_athlete", "/people/person"),
    ("/government/politician", "/people/person"),
    ("/film/actor", "/people/person"),
    ("/film/director", "/people/person"),
    ("/music/group_member", "/people/person"),
    ("/people/deceased_person", "/people/person"),
    ("/celebrities/celebrity", "/people/person"),
    ("/education/university", "/education/educational_institution"),
    ("/education/educational_institution", "/organization/organization"),
    ("/government/political_party", "/organization/organization"),
    ("/business/business_operation", "/organization/organization"),
    ("/location/country", "/location/location"),
    ("/olympics/olympic_participating_country", "/location/country"),
)

_MID = re.compile(r"^/m/[0-9a-z_]+$")
_WIKIDATA_ID = re.compile(r"^Q[1-9][0-9]*$")
_PATH = re.compile(r"^(/[a-z0-9_]+)+(\./[a-z0-9_]+(/[a-z0-9_]+)+)?$")
# Characters that may appear in our IRI paths unescaped (RFC 3987 unreserved + "/").
_IRI_SAFE = "/._-~"


class ConversionError(ValueError):
    """The input files do not have the expected FB15k-237 layout."""


# --- IRIs and labels ------------------------------------------------------------------


def entity_iri(mid: str) -> str:
    """Freebase MID "/m/0948xk" -> "http://rdf.freebase.com/ns/m.0948xk"."""
    if not _MID.match(mid):
        raise ConversionError(f"Not a Freebase MID: {mid!r} (expected /m/ followed by [0-9a-z_]).")
    return FREEBASE_NS + mid[1:].replace("/", ".")


def relation_iri(path: str) -> str:
    """Relation path -> IRI under RELATION_NS, the path kept (percent-encoded where needed)."""
    return RELATION_NS + quote(path.lstrip("/"), safe=_IRI_SAFE)


def type_iri(type_path: str) -> str:
    """Type (or domain) path "/film/actor" -> "https://w3id.org/fb15k237/type/film/actor"."""
    return TYPE_NS + quote(type_path.lstrip("/"), safe=_IRI_SAFE)


def wikidata_iri(qid: str) -> str:
    if not _WIKIDATA_ID.match(qid):
        raise ConversionError(f"Not a Wikidata id: {qid!r} (expected Q followed by digits).")
    return WIKIDATA_NS + qid


def _split_path(path: str) -> tuple[str, str | None]:
    """Split a relation path into its head part and its CVT part (None if not mediated)."""
    if not _PATH.match(path):
        raise ConversionError(f"Not a Freebase relation path: {path!r}.")
    if "." in path:
        head, cvt = path.split(".", 1)
        return head, cvt
    return path, None


def head_type(path: str) -> str:
    """The type of a relation's subject: the head part of the path minus its last key.

    "/film/actor/film./film/performance/film" -> "/film/actor";
    "/base/popstra/celebrity/dated./base/popstra/dated/participant" -> "/base/popstra/celebrity".
    """
    head, _ = _split_path(path)
    return head.rsplit("/", 1)[0]


def domain_of(type_path: str) -> str:
    """The domain of a type: "/film/actor" -> "/film"; "/base/popstra/celebrity" -> "/base/popstra"."""
    return type_path.rsplit("/", 1)[0]


def tail_type(path: str, known_types: set[str]) -> str | None:
    """Type of a mediated relation's object, or None.

    For "H./D.../cvt_type/key" the candidate is domain(cvt_type) + "/" + key; it is used
    only when it is one of `known_types` (the head types), so no new, guessed type appears.
    "/film/actor/film./film/performance/film" -> "/film/film".
    """
    _, cvt = _split_path(path)
    if cvt is None:
        return None
    cvt_type, key = cvt.rsplit("/", 1)
    candidate = domain_of(cvt_type) + "/" + key
    return candidate if candidate in known_types else None


def _words(segment: str) -> str:
    return segment.replace("_", " ").strip()


_GENERIC_NAMESPACE_KEYS = {"base", "user", "schema", "default_domain", "random"}


def _domain_name(domain: str) -> str:
    """The telling part of a domain: "/film" -> "film", "/base/aareas/schema" -> "aareas",
    "/user/jg/default_domain" -> "jg"."""
    keys = [k for k in domain.split("/")[1:] if k not in _GENERIC_NAMESPACE_KEYS]
    return keys[-1] if keys else domain.rsplit("/", 1)[1]


def _singular(word: str) -> str:
    if word.endswith("ies"):
        return word[:-3] + "y"
    return word[:-1] if word.endswith("s") else word


def type_label(type_path: str) -> str:
    """Readable label: "/film/actor" -> "film actor", "/film/film_distributor" -> "film distributor".

    The domain name is prefixed unless the key already starts with it (or its singular:
    "/sports/sport" -> "sport"), so labels stay distinct ("soccer football team" vs
    "american football football team").
    """
    key = type_path.rsplit("/", 1)[1]
    name = _domain_name(domain_of(type_path))
    for prefix in (name, _singular(name)):
        if key == prefix or key.startswith(prefix + "_"):
            return _words(key)
    return f"{_words(name)} {_words(key)}"


def domain_label(domain: str) -> str:
    """"/film" -> "film domain"; "/base/popstra" -> "popstra domain"."""
    return f"{_words(_domain_name(domain))} domain"


def relation_label(path: str) -> str:
    """"/people/person/nationality" -> "people person: nationality";
    "/film/actor/film./film/performance/film" -> "film actor: film / film performance: film"."""
    head, cvt = _split_path(path)
    label = f"{type_label(head_type(path))}: {_words(head.rsplit('/', 1)[1])}"
    if cvt is not None:
        cvt_type, key = cvt.rsplit("/", 1)
        label += f" / {type_label(cvt_type)}: {_words(key)}"
    return label


# --- N-Triples terms ------------------------------------------------------------------

_ECHAR = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(ch: str) -> str:
    if ch in _ECHAR:
        return _ECHAR[ch]
    code = ord(ch)
    if code < 0x20 or code == 0x7F or 0xD800 <= code <= 0xDFFF:
        # Control characters are legal but unreadable; lone surrogates cannot be UTF-8.
        return f"\\u{code:04X}"
    return ch


def literal(text: str, lang: str = "en") -> str:
    """An N-Triples language-tagged literal with the characters that must be escaped escaped."""
    return '"' + "".join(_escape_char(ch) for ch in text) + '"@' + lang


_IRI_FORBIDDEN = re.compile(r'[\x00-\x20<>"{}|^`\\]')


def iri(value: str) -> str:
    if _IRI_FORBIDDEN.search(value):
        raise ConversionError(f"IRI {value!r} holds a character N-Triples does not allow in an IRI.")
    return f"<{value}>"


def triple(s: str, p: str, o: str) -> str:
    """One N-Triples line; `o` is an already formatted term (iri() or literal())."""
    return f"{iri(s)} {iri(p)} {o} .\n"


# --- Reading the inputs ---------------------------------------------------------------


def read_id_file(path: Path) -> list[str]:
    """entity2id.txt / relation2id.txt -> names ordered by id (first line is the count)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    count = int(lines[0])
    names: list[str | None] = [None] * count
    for lineno, line in enumerate(lines[1:], start=2):
        name, _, idx = line.rpartition("\t")
        if not name or not idx.isdigit() or int(idx) >= count or names[int(idx)] is not None:
            raise ConversionError(f"{path}, line {lineno}: bad id line {line!r}.")
        names[int(idx)] = name
    if any(name is None for name in names):
        raise ConversionError(f"{path}: {names.count(None)} ids of 0..{count - 1} have no name.")
    return [name for name in names if name is not None]


def read_triple_file(path: Path) -> list[tuple[int, int, int]]:
    """train2id.txt etc. -> (head, relation, tail) id tuples. OpenKE order is head TAIL relation."""
    lines = path.read_text(encoding="utf-8").splitlines()
    count = int(lines[0])
    triples = []
    for lineno, line in enumerate(lines[1:], start=2):
        parts = line.split()
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise ConversionError(f"{path}, line {lineno}: expected 'head tail relation', got {line!r}.")
        head, tail, rel = (int(p) for p in parts)
        triples.append((head, rel, tail))
    if len(triples) != count:
        raise ConversionError(f"{path}: header says {count} triples, found {len(triples)}.")
    return triples


def read_wikidata(path: Path) -> dict[str, dict]:
    with path.open(encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict):
        raise ConversionError(f"{path}: expected a JSON object keyed by MID.")
    return data


# --- Building the graph ---------------------------------------------------------------


def derive_types(
    entities: Sequence[str], relations: Sequence[str], triples: Iterable[tuple[int, int, int]]
) -> dict[int, set[str]]:
    """Entity id -> set of type paths, from the head types and the mediated tail types."""
    known = {head_type(r) for r in relations}
    heads = [head_type(r) for r in relations]
    tails = [tail_type(r, known) for r in relations]
    types: dict[int, set[str]] = defaultdict(set)
    for h, r, t in triples:
        types[h].add(heads[r])
        if tails[r] is not None:
            types[t].add(tails[r])
    return types


def schema_lines(relations: Sequence[str]) -> Iterator[str]:
    """Classes (types and domains) with labels and subclass links, and the relations."""
    types = sorted({head_type(r) for r in relations})
    domains = sorted({domain_of(t) for t in types})
    for domain in domains:
        yield triple(type_iri(domain), RDF_TYPE, iri(RDFS_CLASS))
        yield triple(type_iri(domain), RDFS_LABEL, literal(domain_label(domain)))
    extra: dict[str, list[str]] = defaultdict(list)
    present = set(types)
    for sub, sup in EXTRA_SUBCLASS_OF:
        if sub in present and sup in present:
            extra[sub].append(sup)
    for t in types:
        yield triple(type_iri(t), RDF_TYPE, iri(RDFS_CLASS))
        yield triple(type_iri(t), RDFS_LABEL, literal(type_label(t)))
        yield triple(type_iri(t), RDFS_SUBCLASS_OF, iri(type_iri(domain_of(t))))
        for sup in extra[t]:
            yield triple(type_iri(t), RDFS_SUBCLASS_OF, iri(type_iri(sup)))
    for r in sorted(relations):
        yield triple(relation_iri(r), RDF_TYPE, iri(RDF_PROPERTY))
        yield triple(relation_iri(r), RDFS_LABEL, literal(relation_label(r)))


def entity_lines(mid: str, info: dict | None, types: Iterable[str]) -> Iterator[str]:
    """Label, aliases, description, Wikidata link and types of one entity."""
    subject = entity_iri(mid)
    if info:
        label = (info.get("label") or "").strip()
        if label:
            yield triple(subject, RDFS_LABEL, literal(label))
        seen = {label}
        for alias in info.get("alternatives") or []:
            alias = alias.strip()
            if alias and alias not in seen:
                seen.add(alias)
                yield triple(subject, SKOS_ALT_LABEL, literal(alias))
        description = (info.get("description") or "").strip()
        if description:
            yield triple(subject, SCHEMA_DESCRIPTION, literal(description))
        if info.get("wikidata_id"):
            yield triple(subject, OWL_SAME_AS, iri(wikidata_iri(info["wikidata_id"])))
    for t in sorted(types):
        yield triple(subject, RDF_TYPE, iri(type_iri(t)))


def build_lines(
    entities: Sequence[str],
    relations: Sequence[str],
    triples: Sequence[tuple[int, int, int]],
    wikidata: dict[str, dict],
) -> Iterator[str]:
    """All N-Triples lines in a fixed order: schema, entities (by MID), relation triples
    (train, valid, test in file order)."""
    yield from schema_lines(relations)
    types = derive_types(entities, relations, triples)
    for idx in sorted(range(len(entities)), key=lambda i: entities[i]):
        yield from entity_lines(entities[idx], wikidata.get(entities[idx]), types.get(idx, ()))
    rel_iris = [iri(relation_iri(r)) for r in relations]
    ent_iris = [iri(entity_iri(e)) for e in entities]
    for h, r, t in triples:
        yield f"{ent_iris[h]} {rel_iris[r]} {ent_iris[t]} .\n"


def write_gzip(lines: Iterable[str], out: Path) -> None:
    """Write lines as UTF-8, gzip-compressed with mtime 0 and no name: same input, same bytes."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as gz:
        for line in lines:
            gz.write(line.encode("utf-8"))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(out)


def convert(data_dir: Path, out: Path) -> None:
    entities = read_id_file(data_dir / "entity2id.txt")
    relations = read_id_file(data_dir / "relation2id.txt")
    triples: list[tuple[int, int, int]] = []
    for name in TRIPLE_FILES:
        triples.extend(read_triple_file(data_dir / name))
    for h, r, t in triples:
        if h >= len(entities) or t >= len(entities) or r >= len(relations):
            raise ConversionError(f"Triple {(h, t, r)} refers to an id outside entity2id/relation2id.")
    wikidata = read_wikidata(data_dir / "entity2wikidata.json")
    write_gzip(build_lines(entities, relations, triples, wikidata), out)


def graph_stats(triples: Iterable[tuple[str, str, str]]) -> dict[str, int]:
    """Counts of a converted graph, from (subject, predicate, object) term values.

    The README's table comes from this function; tests/kb/test_fb15k237.py recomputes it
    on the shipped file (parsed with pyoxigraph) and compares.
    """
    counts = dict.fromkeys(
        ("triples", "entities", "relation_triples", "relations", "types", "domains",
         "entity_type_assertions", "typed_entities", "labels", "aliases", "descriptions",
         "wikidata_links", "subclass_links"), 0)
    entities: set[str] = set()
    typed: set[str] = set()
    relations: set[str] = set()
    classes: set[str] = set()
    entity_types: set[str] = set()
    for s, p, o in triples:
        counts["triples"] += 1
        if s.startswith(FREEBASE_NS):
            entities.add(s)
            if p == RDF_TYPE:
                counts["entity_type_assertions"] += 1
                typed.add(s)
                entity_types.add(o)
            elif p == RDFS_LABEL:
                counts["labels"] += 1
            elif p == SKOS_ALT_LABEL:
                counts["aliases"] += 1
            elif p == SCHEMA_DESCRIPTION:
                counts["descriptions"] += 1
            elif p == OWL_SAME_AS:
                counts["wikidata_links"] += 1
            elif p.startswith(RELATION_NS):
                counts["relation_triples"] += 1
                relations.add(p)
                entities.add(o)
        elif p == RDF_TYPE and o == RDFS_CLASS:
            classes.add(s)
        elif p == RDFS_SUBCLASS_OF:
            counts["subclass_links"] += 1
    counts["entities"] = len(entities)
    counts["typed_entities"] = len(typed)
    counts["relations"] = len(relations)
    counts["types"] = len(entity_types)
    # a domain is a declared class that no entity has as its type (/film, /sports, ...)
    counts["domains"] = len(classes - entity_types)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path, help="folder with entity2id.txt, ..., entity2wikidata.json")
    parser.add_argument("output", type=Path, help="output .nt.gz file")
    parser.add_argument("--stats", action="store_true", help="print the counts of the written file as JSON")
    args = parser.parse_args(argv)
    try:
        convert(args.data_dir, args.output)
    except (ConversionError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if args.stats:
        with gzip.open(args.output, "rt", encoding="utf-8") as f:
            print(json.dumps(graph_stats(_split_ntriples(f)), indent=2))
    return 0


def _split_ntriples(lines: Iterable[str]) -> Iterator[tuple[str, str, str]]:
    """(s, p, o) values of the lines this script writes (one triple a line, IRIs in <>)."""
    for line in lines:
        s, p, o = line.rstrip(" .\n").split(" ", 2)
        yield s[1:-1], p[1:-1], o[1:-1] if o.startswith("<") else o


if __name__ == "__main__":
    sys.exit(main())
