"""The alias index: every KB alias as the sequence of spaCy LOWER hashes of its tokens,
stored beside the KB (``alias_index.npz``) so that loading a pipeline does not tokenize
the aliases again (33k aliases cost seconds of tokenizing; the file loads in milliseconds).

The index is derived data, a cache, and only right for the tokenizer that made it. ``kb
import`` writes the one for spaCy's blank tokenizer of a language (English by default:
`build_blank_alias_index`), the tokenizer a pipeline's linker uses unless given another,
as part of the KB's atomic write, so the folder does not change after the import and no
load tokenizes. For any other tokenizer it is built where spaCy is loaded
(`features/alias_spans.py`) and saved beside the KB (warning W200). It therefore carries
two keys, checked on every use:

- ``tokenizer``: a digest of the tokenizer's rules and the spaCy version that ran them;
- ``aliases``: a digest of the KB's alias surfaces, so an index left beside a KB that an
  import has since replaced is never used for the new one.

A missing, damaged or mismatched index is rebuilt (and written again where the folder is
writable); the write is atomic (temporary file, then ``os.replace``), so readers see the
old index or the new one. Arrays only, read with ``allow_pickle=False``.

Arrays (n = aliases, s = distinct token sequences, t = their tokens):

    alias_seq         int32 (n,)    the alias's token sequence, -1 when it has no tokens
    alias_norm_chars  int32 (n,)    len(surface.strip().lower()) (the linker's min length)
    alias_has_alpha   bool  (n,)    the surface has a letter
    alias_norm_hash   uint64 (n,)   hash of surface.strip().lower() (stop-word check)
    seq_indptr        int64 (s + 1,) CSR over seq_tokens
    seq_tokens        uint64 (t,)   LOWER hashes of the accent-folded surface's tokens
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import storage
from .strings import StringTable

INDEX_VERSION = 1
ARRAY_DTYPES: dict[str, type] = {
    "alias_seq": np.int32,
    "alias_norm_chars": np.int32,
    "alias_has_alpha": np.bool_,
    "alias_norm_hash": np.uint64,
    "seq_indptr": np.int64,
    "seq_tokens": np.uint64,
}


def aliases_digest(surfaces: Sequence[str]) -> str:
    """sha256 of the alias surfaces (what the index tokenized), in order: of their UTF-8
    forms, each followed by a NUL byte. A memory-mapped table (kb/strings.py) is hashed
    from its stored bytes without decoding a string; the digest is the same."""
    if isinstance(surfaces, StringTable) and len(surfaces):
        raw = np.frombuffer(surfaces.raw_bytes(), dtype=np.uint8)
        ends = np.cumsum(surfaces.row_lengths())
        return hashlib.sha256(np.insert(raw, ends, 0).tobytes()).hexdigest()
    joined = "\x00".join(surfaces) + "\x00"  # one encode: a loop costs ~0.1 s for 33k aliases
    return hashlib.sha256(joined.encode("utf8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class AliasIndex:
    """Token-hash sequences of a KB's aliases (see the module docstring for the arrays)."""

    tokenizer: str
    aliases: str
    arrays: dict[str, np.ndarray]

    @property
    def n_aliases(self) -> int:
        return int(self.arrays["alias_seq"].shape[0])

    @property
    def n_sequences(self) -> int:
        return int(self.arrays["seq_indptr"].shape[0] - 1)

    def fits(self, tokenizer: str, aliases: str) -> bool:
        """Whether this index was made by `tokenizer` from aliases with digest `aliases`."""
        return self.tokenizer == tokenizer and self.aliases == aliases


def build_alias_index(surfaces: Sequence[str], tokens: Callable[[str], np.ndarray],
                      hash_string: Callable[[str], int], *, tokenizer: str) -> AliasIndex:
    """Tokenize every alias once and keep the distinct token-hash sequences.

    surfaces (Sequence[str]): the KB's alias surfaces (original case).
    tokens (Callable[[str], np.ndarray]): surface -> uint64 LOWER hashes of the tokens of
        its accent-folded form, as the pipeline's tokenizer makes them.
    hash_string (Callable[[str], int]): spaCy's string hash (for the stop-word check).
    tokenizer (str): the key of the tokenizer `tokens` uses.
    """
    n = len(surfaces)
    alias_seq = np.full(n, -1, dtype=np.int32)
    norm_chars = np.zeros(n, dtype=np.int32)
    has_alpha = np.zeros(n, dtype=bool)
    norm_hash = np.zeros(n, dtype=np.uint64)
    seq_ids: dict[bytes, int] = {}
    seqs: list[np.ndarray] = []
    for i, text in enumerate(surfaces):
        norm = text.strip().lower()
        norm_chars[i] = len(norm)
        has_alpha[i] = any(c.isalpha() for c in norm)
        norm_hash[i] = hash_string(norm)
        toks = np.asarray(tokens(text), dtype=np.uint64)
        if toks.size == 0:
            continue
        key = toks.tobytes()
        sid = seq_ids.get(key)
        if sid is None:
            sid = seq_ids[key] = len(seqs)
            seqs.append(toks)
        alias_seq[i] = sid
    indptr = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum([s.size for s in seqs], out=indptr[1:])
    flat = np.concatenate(seqs) if seqs else np.zeros(0, dtype=np.uint64)
    arrays = {"alias_seq": alias_seq, "alias_norm_chars": norm_chars, "alias_has_alpha": has_alpha,
              "alias_norm_hash": norm_hash, "seq_indptr": indptr, "seq_tokens": flat.astype(np.uint64)}
    return AliasIndex(tokenizer, aliases_digest(surfaces), arrays)


def blank_tokenizer_key(lang: str) -> str:
    """The key of spaCy's blank tokenizer of `lang` (what `features.linker.BlankTokenizer`
    calls its `alias_index_key`): fixed by the spaCy version and the language."""
    from spacy import about

    return f"spacy-{about.__version__}/{lang}/blank"


def check_blank_language(lang: str) -> None:
    """Raise KBImportError (E273) unless spaCy has a blank tokenizer for `lang`; looks
    for the module only, so that an import fails before parsing without loading spaCy."""
    import importlib.util

    from ..errors import Errors, KBImportError

    reason = None
    if not isinstance(lang, str) or not lang.isidentifier() or not lang.islower():
        reason = "not a language code"
    else:
        # find_spec of "spacy.lang.xx" would import spacy itself: look in its folder instead
        spec = importlib.util.find_spec("spacy")
        roots = list(spec.submodule_search_locations or []) if spec is not None else []
        if not any((Path(root) / "lang" / lang / "__init__.py").is_file() for root in roots):
            reason = f"there is no spacy.lang.{lang}"
    if reason is not None:
        raise KBImportError(Errors.E273.format(lang=lang, reason=reason))


def build_blank_alias_index(surfaces: Sequence[str], lang: str = "en") -> AliasIndex:
    """The alias index for spaCy's blank tokenizer of `lang`, as a linker would build it
    (accent-folded surfaces, LOWER hashes). spaCy is imported here, not at module level:
    the `kb` commands start without it.

    surfaces (Sequence[str]): the KB's alias surfaces (original case).
    lang (str): the language code of the blank tokenizer, e.g. "en".
    """
    import spacy
    from spacy.attrs import LOWER
    from spacy.strings import hash_string

    from .folding import fold_accents

    tokenizer = spacy.blank(lang).tokenizer

    def tokens(surface: str) -> np.ndarray:
        return tokenizer(fold_accents(surface)).to_array(LOWER).reshape(-1)

    return build_alias_index(surfaces, tokens, hash_string, tokenizer=blank_tokenizer_key(lang))


def _check(arrays: dict[str, np.ndarray]) -> None:
    """Raise ValueError unless the arrays fit together (a damaged file is rebuilt, never used)."""
    for name, dtype in ARRAY_DTYPES.items():
        if name not in arrays or arrays[name].dtype != np.dtype(dtype) or arrays[name].ndim != 1:
            raise ValueError(f"array {name!r} is missing or not 1-d {np.dtype(dtype)}")
    n = arrays["alias_seq"].shape[0]
    if any(arrays[name].shape[0] != n for name in ("alias_norm_chars", "alias_has_alpha", "alias_norm_hash")):
        raise ValueError("per-alias arrays differ in length")
    indptr, n_tok = arrays["seq_indptr"], arrays["seq_tokens"].shape[0]
    if indptr.shape[0] < 1 or indptr[0] != 0 or indptr[-1] != n_tok or np.any(np.diff(indptr) <= 0):
        raise ValueError("seq_indptr does not index seq_tokens")
    seq = arrays["alias_seq"]
    if seq.size and (seq.min() < -1 or seq.max() >= indptr.shape[0] - 1):
        raise ValueError("alias_seq holds ids outside the sequences")


PREFIX = "alias_index/"  # the arrays' names inside a serialised KB (`KnowledgeBase.to_bytes`)


def index_to_arrays(index: AliasIndex, prefix: str = "") -> dict[str, np.ndarray]:
    """The index as plain arrays (its keys as one JSON string array), names prefixed."""
    keys = json.dumps({"version": INDEX_VERSION, "tokenizer": index.tokenizer, "aliases": index.aliases})
    return {prefix + name: value for name, value in {**index.arrays, "keys": np.array(keys)}.items()}


def index_from_arrays(arrays: dict[str, np.ndarray], prefix: str = "") -> AliasIndex | None:
    """The index held in `arrays` (names with `prefix`, which are removed from `arrays`), or
    None when there is none or it is damaged or of another index version (then rebuilt)."""
    own = {name[len(prefix):]: arrays.pop(name) for name in [n for n in arrays if n.startswith(prefix)]}
    try:
        keys = json.loads(str(np.asarray(own.pop("keys")).reshape(-1)[0]))  # 0-d on disk, 1-d from bytes
        if keys.get("version") != INDEX_VERSION:
            return None
        _check(own)
        return AliasIndex(str(keys["tokenizer"]), str(keys["aliases"]), own)
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


def read_alias_index(path: str | Path) -> AliasIndex | None:
    """The index stored in KB folder `path`, or None when there is none or it is damaged
    or of another index version (the caller then rebuilds it)."""
    try:
        arrays = storage.read_extra_arrays(Path(path), storage.ALIAS_INDEX_FILE)
    except ValueError:
        return None
    return None if arrays is None else index_from_arrays(arrays)


def write_alias_index(path: str | Path, index: AliasIndex) -> None:
    """Write `index` into KB folder `path` atomically (raises OSError where it cannot)."""
    storage.write_extra_arrays(Path(path), storage.ALIAS_INDEX_FILE, index_to_arrays(index))


__all__ = ["AliasIndex", "PREFIX", "aliases_digest", "blank_tokenizer_key", "build_alias_index",
           "build_blank_alias_index", "check_blank_language", "index_from_arrays", "index_to_arrays",
           "read_alias_index", "write_alias_index"]
