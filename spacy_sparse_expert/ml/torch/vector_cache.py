"""Per-document token vectors of a frozen transformer, computed once.

A frozen encoder gives every document the same vectors in every epoch, every seed
and every sweep run, and on CPU the transformer is ~all of the training time. The
cache maps a document key (a digest of its tokens, made by the featurizer) to its
(n_tokens, hidden) vectors: in memory, least recently used first out once over
``max_bytes``, and optionally in a directory of safetensors files shared by later
runs (one subfolder per encoder fingerprint, so other weights or window settings
never read them). Pure PyTorch, no spaCy.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Optional

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor


class VectorCache:
    """max_bytes (int): memory budget of the in-memory part (0 = keep nothing in memory).
    directory (Optional[Path]): opt-in disk cache; None = memory only.
    fingerprint (Callable[[], str]): names what the vectors depend on (weights, window
        settings); read once, on first disk use.
    """

    def __init__(self, max_bytes: int, directory: Optional[Path] = None,
                 fingerprint: Optional[Callable[[], str]] = None) -> None:
        self.max_bytes = max_bytes
        self.directory = Path(directory) if directory is not None else None
        self._fingerprint = fingerprint
        self._folder: Optional[Path] = None
        self._items: "OrderedDict[str, Tensor]" = OrderedDict()
        self._bytes = 0
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0 or self.directory is not None

    def set_fingerprint(self, fingerprint: Callable[[], str]) -> None:
        self._fingerprint = fingerprint
        self._folder = None

    def clear(self) -> None:
        """Forget the in-memory vectors (a new module was built: its weights may differ)."""
        self._items.clear()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def __contains__(self, key: str) -> bool:
        if key in self._items:
            return True
        path = self._path(key)
        return path is not None and path.is_file()

    def get(self, key: str, device: Optional[torch.device] = None) -> Optional[Tensor]:
        """(n_tokens, hidden) vectors of ``key``, or None."""
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        else:
            path = self._path(key)
            if path is None or not path.is_file():
                self.misses += 1
                return None
            value = load_file(str(path))["vectors"]
            self._remember(key, value)
        self.hits += 1
        return value if device is None else value.to(device)

    def put(self, key: str, value: Tensor) -> None:
        # cloned outside inference mode: vectors cached while predicting (dev scoring runs
        # under torch.inference_mode) are then plain tensors that training may use
        with torch.inference_mode(False):
            value = value.detach().to("cpu").clone().contiguous()
        self._remember(key, value)
        path = self._path(key)
        if path is not None and not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            # write then rename: a reader in another process never sees half a file
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            os.close(fd)
            save_file({"vectors": value}, tmp)
            os.replace(tmp, path)

    def _remember(self, key: str, value: Tensor) -> None:
        size = value.numel() * value.element_size()
        if size > self.max_bytes:
            return
        old = self._items.pop(key, None)
        if old is not None:
            self._bytes -= old.numel() * old.element_size()
        self._items[key] = value
        self._bytes += size
        while self._bytes > self.max_bytes:
            _, dropped = self._items.popitem(last=False)
            self._bytes -= dropped.numel() * dropped.element_size()

    def _path(self, key: str) -> Optional[Path]:
        if self.directory is None:
            return None
        if self._folder is None:
            if self._fingerprint is None:
                return None
            self._folder = self.directory / self._fingerprint()
        return self._folder / key[:2] / f"{key}.safetensors"


def module_fingerprint(module: torch.nn.Module, *extra: object) -> str:
    """A digest of a module's parameters and buffers (names, shapes, values) and of
    ``extra`` settings: the disk cache's folder name."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr(extra).encode())
    for name, tensor in module.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().to("cpu").contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


__all__ = ["VectorCache", "module_fingerprint"]
