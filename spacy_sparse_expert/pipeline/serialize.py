"""Saving and loading a ``SparseExpertTextCategorizer`` (``textcat.py``), whose
``to_bytes``/``from_bytes``/``to_disk``/``from_disk`` call these functions:

    <component>/cfg     JSON settings, labels and the knowledge id space size
    <component>/vocab   the vocab (unless excluded)
    <component>/model   the torch weights, safetensors
    <component>/kb/     the compiled KnowledgeBase (if any), copied
    <component>/kb_ref.json  instead of kb/, for a KB loaded with ``by_reference``: the
                        KB folder's absolute path and content sha256, checked at load
                        (SSE-E270 when the folder is gone or holds another KB)
    <component>/rules   the RuleSet as JSONL (if any)
    <component>/transformer/  config.json and tokenizer files of a transformer encoder
                        (its weights are in ``model``), so loading never reads the
                        pretrained directory the config names (``ml/transformer_files.py``)

``to_bytes`` writes the same parts as one msgpack message, always with the KB copied (bytes
are self-contained). Loading refuses (E063, naming
the component and the path) what saving cannot have written: no cfg or weights, a cfg
that is not JSON or has no labels, a damaged vocab, a KB or rules other than the saved ones.
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Dict, Iterable, Optional, Union

import srsly
from spacy import util

from ..errors import Errors, KBFormatError
from ..kb import storage
from ..kb.knowledge_base import KnowledgeBase
from ..ml.architectures import load_weights, torch_module
from ..ml.transformer_files import TransformerSource
from ..ml.wrapper import state_to_bytes
from ..rules.rules import RuleSet

if TYPE_CHECKING:  # pragma: no cover
    from .textcat import SparseExpertTextCategorizer


def to_bytes(pipe: "SparseExpertTextCategorizer", *, exclude: Iterable[str] = tuple()) -> bytes:
    serialize: Dict[str, Callable[[], Any]] = {
        "cfg": lambda: srsly.json_dumps(pipe.cfg),
        "vocab": lambda: pipe.vocab.to_bytes(exclude=exclude),
        "model": lambda: state_to_bytes(torch_module(pipe.model)),
    }
    if pipe.kb is not None:
        serialize["kb"] = pipe.kb.to_bytes
    if pipe.rules is not None:
        serialize["rules"] = pipe.rules.to_bytes
    source = _transformer(pipe)
    if source is not None:
        serialize["transformer"] = source.files
    return util.to_bytes(serialize, exclude)


def from_bytes(pipe: "SparseExpertTextCategorizer", bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> None:
    where = f"{pipe.name} (bytes)"
    try:
        msg = srsly.msgpack_loads(bytes_data)
    except Exception as err:  # noqa: BLE001 - whatever the decoder raises, the bytes are not ours
        raise ValueError(Errors.E063.format(name=pipe.name, path=where, reason=f"not msgpack ({err})")) from None
    missing = [key for key in ("cfg", "model") if key not in exclude and key not in msg] if isinstance(
        msg, dict) else ["cfg", "model"]
    if missing:
        raise ValueError(Errors.E063.format(name=pipe.name, path=where, reason=f"no {' or '.join(missing)}"))
    if "cfg" not in exclude:
        _load_cfg(pipe, lambda: srsly.json_loads(msg["cfg"]), where)
    if "vocab" in msg and "vocab" not in exclude:
        _load_vocab(pipe, lambda: pipe.vocab.from_bytes(msg["vocab"], exclude=exclude), where)
    kb = KnowledgeBase.from_bytes(msg["kb"]) if msg.get("kb") is not None else None
    rules = RuleSet.from_bytes(msg["rules"]) if msg.get("rules") is not None else None
    _knowledge_from(pipe, kb, rules, where)
    source = _transformer(pipe)
    if source is not None and msg.get("transformer") is not None and "transformer" not in exclude:
        source.restore(msg["transformer"], where)
    with _restoring(source, "model" not in exclude and msg.get("transformer") is not None):
        pipe._init_model()
    if "model" not in exclude:
        load_weights(pipe.model, msg["model"], source=where)


def to_disk(pipe: "SparseExpertTextCategorizer", path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
    path = util.ensure_path(path)
    serialize: Dict[str, Callable[[Path], Any]] = {
        "cfg": lambda p: srsly.write_json(p, pipe.cfg),
        "vocab": lambda p: pipe.vocab.to_disk(p, exclude=exclude),
        "model": lambda p: p.write_bytes(state_to_bytes(torch_module(pipe.model))),
    }
    reference = _kb_reference(pipe) if "kb" not in exclude else None
    if reference is not None:
        serialize[KB_REF_FILE] = lambda p: srsly.write_json(p, reference)
    elif pipe.kb is not None:
        serialize["kb"] = pipe.kb.to_disk
    if pipe.rules is not None:
        serialize["rules"] = pipe.rules.to_disk
    source = _transformer(pipe)
    if source is not None:
        serialize["transformer"] = source.to_disk
    util.to_disk(path, serialize, exclude)
    if "kb" not in exclude:
        _drop_other_kb_form(Path(path), by_reference=reference is not None)


def from_disk(pipe: "SparseExpertTextCategorizer", path: Union[str, Path], *,
              exclude: Iterable[str] = tuple()) -> None:
    path = util.ensure_path(path)
    # cfg and weights are always written; loading without them would give a model
    # with random weights that predicts without complaint.
    missing = [name for name in ("cfg", "model") if name not in exclude and not (path / name).is_file()]
    if missing:
        reason = f"{' and '.join(missing)} missing (or not a file)"
        raise ValueError(Errors.E063.format(name=pipe.name, path=path, reason=reason))
    if "cfg" not in exclude:
        _load_cfg(pipe, lambda: srsly.read_json(path / "cfg"), path / "cfg")
    if (path / "vocab").exists() and "vocab" not in exclude:
        _load_vocab(pipe, lambda: pipe.vocab.from_disk(path / "vocab", exclude=exclude), path / "vocab")
    if (path / KB_REF_FILE).exists():
        kb: Optional[KnowledgeBase] = _kb_from_reference(pipe, Path(path))
    else:
        kb = KnowledgeBase.from_disk(path / "kb") if (path / "kb").exists() else None
    rules = RuleSet.from_disk(path / "rules") if (path / "rules").exists() else None
    _knowledge_from(pipe, kb, rules, path)
    source = _transformer(pipe)
    saved = (path / "transformer").exists() and "transformer" not in exclude
    if source is not None and saved:
        source.from_disk(path / "transformer")
    # a component saved before it carried its transformer files builds from the config's path
    with _restoring(source, saved and "model" not in exclude):
        pipe._init_model()
    model_path = path / "model"
    if "model" not in exclude:
        load_weights(pipe.model, model_path, source=str(model_path))


KB_REF_FILE = "kb_ref.json"
KB_REF_FORMAT = "spacy-sparse-expert.kb-reference"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _kb_reference(pipe: "SparseExpertTextCategorizer") -> Optional[Dict[str, Any]]:
    """What kb_ref.json holds for a KB loaded with `by_reference`, else None (copy it)."""
    kb = pipe.kb
    if kb is None or not kb.by_reference:
        return None
    sha = kb.meta.get("content_sha256")
    if kb.path is None or not isinstance(sha, str):
        raise KBFormatError(Errors.E271.format(path=kb.path, reason="it was not loaded from a format 2 folder"))
    return {"format": KB_REF_FORMAT, "path": os.path.abspath(kb.path), "content_sha256": sha,
            "entities": kb.n_entities, "aliases": kb.n_aliases}


def _drop_other_kb_form(path: Path, *, by_reference: bool) -> None:
    """A component folder saved over an earlier save holds one form of its KB: the copy
    (kb/) or the reference (kb_ref.json), never both."""
    if by_reference:
        if (path / "kb").is_dir() and not (path / "kb").is_symlink() and storage.looks_like_kb(path / "kb"):
            shutil.rmtree(path / "kb")
    elif (path / KB_REF_FILE).is_file():
        (path / KB_REF_FILE).unlink()


def _kb_from_reference(pipe: "SparseExpertTextCategorizer", path: Path) -> KnowledgeBase:
    """The KB kb_ref.json names, after checking that it is the one saved (E270, E272)."""
    ref_file = path / KB_REF_FILE
    try:
        ref = srsly.read_json(ref_file)
    except (ValueError, OSError) as err:
        raise KBFormatError(Errors.E272.format(name=pipe.name, file=ref_file, reason=f"not JSON: {err}")) from None
    if not (isinstance(ref, dict) and ref.get("format") == KB_REF_FORMAT and isinstance(ref.get("path"), str)
            and isinstance(ref.get("content_sha256"), str) and _SHA256.fullmatch(ref["content_sha256"])):
        raise KBFormatError(Errors.E272.format(
            name=pipe.name, file=ref_file, reason=f"it needs \"format\": \"{KB_REF_FORMAT}\", an absolute \"path\" "
                                                  "and a \"content_sha256\" of 64 hex digits"))
    kb_path, sha = Path(ref["path"]), ref["content_sha256"]

    def refused(reason: str) -> KBFormatError:
        return KBFormatError(Errors.E270.format(name=pipe.name, where=path, path=kb_path, sha=sha, reason=reason))

    if not kb_path.is_dir():
        raise refused("no folder is there")
    try:
        kb = KnowledgeBase.from_disk(kb_path)
    except KBFormatError as err:
        raise refused(f"it is not a readable KB ({err})") from err
    found = kb.meta.get("content_sha256")
    if found != sha:
        raise refused(f"the KB there has content sha256 {found} (another import or another graph)")
    kb.by_reference = True
    return kb


def _transformer(pipe: "SparseExpertTextCategorizer") -> Optional[TransformerSource]:
    spec = pipe.model.attrs.get("encoder_spec")
    return getattr(spec, "transformer", None)


def _restoring(source: Optional[TransformerSource], restore: bool) -> ContextManager[None]:
    """Build the transformer from its saved config (the saved weights follow at once)."""
    return source.restoring() if source is not None and restore else nullcontext()


def _knowledge_from(pipe: "SparseExpertTextCategorizer", kb: Optional[KnowledgeBase], rules: Optional[RuleSet],
                    where: Any) -> None:
    pipe.set_knowledge(kb, rules)
    for key in ("n_knowledge_ids", "n_dense"):
        if pipe.cfg.get(key) is not None and pipe.cfg[key] != pipe.model.attrs[key]:
            raise ValueError(Errors.E063.format(
                name=pipe.name, path=where, reason=f"cfg says {key}={pipe.cfg[key]}, the saved kb and rules "
                                                   f"give {pipe.model.attrs[key]}: one is missing or replaced"))


def _load_cfg(pipe: "SparseExpertTextCategorizer", read: Callable[[], Any], where: Any) -> None:
    """Update cfg from `read()`, refusing what `to_disk`/`to_bytes` cannot have written."""
    try:
        cfg = read()
    except (ValueError, OSError) as err:  # UnicodeDecodeError too, e.g. a planted pickle
        reason = f"cfg is not JSON ({err})"
        raise ValueError(Errors.E063.format(name=pipe.name, path=where, reason=reason)) from None
    labels = cfg.get("labels") if isinstance(cfg, dict) else None
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise ValueError(Errors.E063.format(name=pipe.name, path=where, reason="cfg has no list of labels"))
    if not all(isinstance(cfg.get(k), (int, type(None))) for k in ("n_knowledge_ids", "n_dense")):
        raise ValueError(Errors.E063.format(name=pipe.name, path=where, reason="cfg sizes are not integers"))
    pipe.cfg.update(cfg)


def _load_vocab(pipe: "SparseExpertTextCategorizer", load: Callable[[], Any], where: Any) -> None:
    try:
        load()
    except Exception as err:  # noqa: BLE001 - spaCy's decoders raise many types for damaged data
        raise ValueError(Errors.E063.format(name=pipe.name, path=where, reason=f"bad vocab ({err})")) from None


__all__ = ["KB_REF_FILE", "from_bytes", "from_disk", "to_bytes", "to_disk"]
