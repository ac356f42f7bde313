"""Reading a few tensors from a checkpoint file without loading the model.

safetensors files are opened with ``safe_open`` and only the selected tensors are read;
pickle ``.bin`` files (only with ``allow_pickle``) go through
``torch.load(weights_only=True, mmap=True)``, which maps the file instead of reading it.

Tensor names are canonical: GPT-NeoX files store the unembedding as ``embed_out.weight``
(transformers 5 still writes that name); once loaded it is ``lm_head.weight``, and that is
the name the warehouse uses. Aliases select the common tensors of any architecture.
"""
from __future__ import annotations

import fnmatch
import json
import struct
from pathlib import Path

import numpy as np
import torch

from ingest.errors import TdwError

FILE_TO_CANONICAL = {"embed_out.weight": "lm_head.weight"}
ALIASES = {
    "unembed": ("lm_head.weight",),
    "embed": ("gpt_neox.embed_in.weight", "transformer.wte.weight", "model.embed_tokens.weight"),
}
DEFAULT_TENSORS = "unembed,embed"


def canonical(name: str) -> str:
    return FILE_TO_CANONICAL.get(name, name)


def select_tensors(names: list[str], pattern: str) -> list[str]:
    """Canonical names matching a comma-separated list of globs and aliases, in file order."""
    chosen: list[str] = []
    for part in (p.strip() for p in pattern.split(",")):
        if not part:
            continue
        if part in ALIASES:
            hits = [n for n in names if n in ALIASES[part]]
            if part == "unembed" and not hits:  # tied embeddings: the input embedding is W_U
                hits = [n for n in names if n in ALIASES["embed"]]
        else:
            hits = [n for n in names if fnmatch.fnmatchcase(n, part)]
        if not hits:
            raise TdwError(f"tensor pattern {part!r} matches no tensor "
                           f"(the checkpoint has {len(names)}, e.g. {', '.join(names[:3])})")
        chosen += [n for n in hits if n not in chosen]
    if not chosen:
        raise TdwError(f"tensor pattern {pattern!r} selects nothing")
    return chosen


def _check_safetensors(path: Path) -> tuple[dict, int]:
    """Parse and validate the header (a truncated or foreign file fails here, cleanly);
    returns it with the byte offset where the data begins."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise TdwError(f"{path}: not a safetensors file (only {size} bytes)")
        (n,) = struct.unpack("<Q", head)
        if n <= 0 or n > min(size - 8, 100 * 2**20):
            raise TdwError(f"{path}: not a safetensors file (bad header length)")
        try:
            header = json.loads(f.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise TdwError(f"{path}: not a safetensors file (header is not JSON)") from None
    end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    if 8 + n + end > size:
        raise TdwError(f"{path}: truncated checkpoint ({size} bytes, header needs {8 + n + end})")
    return header, 8 + n


class TensorFile:
    """Lazy access to the tensors of one checkpoint (one or more weight files)."""

    def __init__(self, files: list[Path], allow_pickle: bool = False):
        self.files = files
        self._where: dict[str, tuple[Path, str]] = {}
        self._f32: dict[str, tuple[Path, int, tuple[int, ...]]] = {}   # float32 tensors: offset, shape
        self._shapes: dict[str, tuple[int, ...]] = {}                   # from safetensors headers
        for path in files:
            if path.suffix == ".safetensors":
                header, data_start = _check_safetensors(path)
                names = [k for k in header if k != "__metadata__"]
                for k in names:
                    info = header[k]
                    self._shapes[canonical(k)] = tuple(info["shape"])
                    if info.get("dtype") == "F32":
                        self._f32[canonical(k)] = (path, data_start + info["data_offsets"][0],
                                                   tuple(info["shape"]))
            elif path.suffix == ".bin":
                if not allow_pickle:
                    raise TdwError(f"{path} is a pickle checkpoint: pass --allow-pickle to read it "
                                   "(loaded with weights_only=True)")
                names = list(self._load_bin(path).keys())
            else:
                raise TdwError(f"{path}: unsupported checkpoint format")
            for raw in names:
                self._where[canonical(raw)] = (path, raw)
        self._bins: dict[Path, dict] = {}

    @staticmethod
    def _load_bin(path: Path) -> dict:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception as e:  # torch raises many types for a bad pickle
            raise TdwError(f"{path}: cannot read pickle checkpoint safely: {str(e).splitlines()[0]}") from None

    def names(self) -> list[str]:
        return list(self._where)

    def shape(self, name: str) -> tuple[int, ...]:
        return self._shapes[name] if name in self._shapes else tuple(self.read(name).shape)

    def read(self, name: str) -> np.ndarray:
        """One tensor as a read-only float32 numpy array (a memory map where the file is float32)."""
        if name not in self._where:
            raise TdwError(f"tensor {name!r} not in checkpoint")
        path, raw = self._where[name]
        if name in self._f32:  # map the file: no copy, so the tensor is resident once
            path, offset, shape = self._f32[name]
            return np.memmap(path, dtype="<f4", mode="r", offset=offset, shape=shape)
        if path.suffix == ".bin":
            if path not in self._bins:
                self._bins[path] = self._load_bin(path)
            t = self._bins[path][raw]
        else:
            from safetensors import safe_open
            try:
                with safe_open(str(path), framework="pt") as f:
                    t = f.get_tensor(raw)
            except Exception as e:
                raise TdwError(f"{path}: cannot read tensor {raw!r}: {str(e).splitlines()[0]}") from None
        if t.dtype != torch.float32:
            t = t.float()
        return t.detach().numpy()
