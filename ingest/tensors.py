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
import math
import os
import stat
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


# safetensors dtypes and their sizes in bits (as the safetensors library defines them)
DTYPE_BITS = {"BOOL": 8, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8, "F8_E8M0": 8, "I16": 16, "U16": 16,
              "F16": 16, "BF16": 16, "I32": 32, "U32": 32, "F32": 32, "F64": 64, "I64": 64, "U64": 64,
              "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "C64": 64}
MAX_HEADER = 100 * 2**20          # the safetensors library's own limit
MAX_TENSORS = 1_000_000
MAX_DIMS = 8


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict:
    seen: dict = {}
    for k, v in pairs:
        if k in seen:
            raise TdwError(f"duplicate header key {k!r}")
        seen[k] = v
    return seen


def _bad(path: Path, why: str) -> TdwError:
    return TdwError(f"{path}: not a valid safetensors file ({why})")


def check_regular(path: Path) -> None:
    """Refuse anything but a regular file (a FIFO, a device, a symlink to /dev/zero) before it
    is opened: reading one would hang or never end."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise TdwError(f"{path}: cannot read ({e.strerror or e})") from None
    if not stat.S_ISREG(st.st_mode):
        raise TdwError(f"{path}: not a regular file (a FIFO, device or directory): refused")


def _check_safetensors(path: Path) -> tuple[dict, int]:
    """Parse and validate the header exactly as the safetensors library does (a truncated,
    foreign or forged file fails here, cleanly): a JSON object without duplicate keys; each
    tensor a known dtype, a shape of non-negative integers and ``data_offsets`` whose span is
    shape x dtype size; the tensors' byte ranges, sorted, tile the data buffer exactly (no
    gap, no overlap, nothing past the end, nothing left over). Returns the header and the
    byte offset where the data begins."""
    check_regular(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise TdwError(f"{path}: not a safetensors file (only {size} bytes)")
        (n,) = struct.unpack("<Q", head)
        if n <= 0 or n > min(size - 8, MAX_HEADER):
            raise TdwError(f"{path}: not a safetensors file (bad header length)")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise TdwError(f"{path}: not a safetensors file (header is not JSON)") from None
    except TdwError as e:
        raise _bad(path, str(e)) from None
    if not isinstance(header, dict):
        raise _bad(path, "header is not a JSON object")
    meta = header.get("__metadata__")
    if meta is not None and not (isinstance(meta, dict) and all(isinstance(v, str) for v in meta.values())):
        raise _bad(path, "__metadata__ must map strings to strings")
    tensors = [(k, v) for k, v in header.items() if k != "__metadata__"]
    if len(tensors) > MAX_TENSORS:
        raise _bad(path, f"{len(tensors)} tensors, more than {MAX_TENSORS}")
    spans = []
    for k, v in tensors:
        if not isinstance(v, dict):       # other fields are ignored, as the library ignores them
            raise _bad(path, f"tensor {k!r}: entry must be an object with dtype, shape and data_offsets")
        dtype, shape, offsets = v.get("dtype"), v.get("shape"), v.get("data_offsets")
        if dtype not in DTYPE_BITS:
            raise _bad(path, f"tensor {k!r}: unknown dtype {dtype!r}")
        if (not isinstance(shape, list) or len(shape) > MAX_DIMS
                or not all(type(d) is int and 0 <= d < 2**53 for d in shape)):
            raise _bad(path, f"tensor {k!r}: shape must be at most {MAX_DIMS} non-negative integers")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(type(o) is int and 0 <= o < 2**63 for o in offsets) or offsets[0] > offsets[1]):
            raise _bad(path, f"tensor {k!r}: data_offsets must be [begin, end] with 0 <= begin <= end")
        bits = DTYPE_BITS[dtype] * math.prod(shape)
        if bits % 8 or offsets[1] - offsets[0] != bits // 8:
            raise _bad(path, f"tensor {k!r}: {offsets[1] - offsets[0]} bytes do not hold shape "
                             f"{shape} of {dtype}")
        spans.append((offsets[0], offsets[1], k))
    need = max((stop for _, stop, _ in spans), default=0)
    if 8 + n + need > size:
        raise TdwError(f"{path}: truncated checkpoint ({size} bytes, header needs {8 + n + need})")
    end = 0
    for begin, stop, k in sorted(spans):
        if begin != end:
            raise _bad(path, f"tensor {k!r}: data_offsets {'overlap' if begin < end else 'leave a gap'} "
                             "(they must tile the data buffer)")
        end = stop
    if 8 + n + end > size:
        raise TdwError(f"{path}: truncated checkpoint ({size} bytes, header needs {8 + n + end})")
    if 8 + n + end != size:
        raise _bad(path, f"{size - 8 - n - end} bytes after the last tensor")
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
                    if canonical(k) in self._shapes:
                        raise TdwError(f"{path}: tensor {canonical(k)!r} appears twice in the checkpoint")
                    self._shapes[canonical(k)] = tuple(info["shape"])
                    if info.get("dtype") == "F32":
                        self._f32[canonical(k)] = (path, data_start + info["data_offsets"][0],
                                                   tuple(info["shape"]))
            elif path.suffix == ".bin":
                check_regular(path)
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
