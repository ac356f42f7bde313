"""Checkpoint sources behind one interface.

A *source* is one training run (``model_id``) with checkpoints at integer steps:

- ``LocalSource``: a directory ``<dir>/step<N>/`` holding ``config.json`` and
  ``model.safetensors`` (or a sharded index, or ``pytorch_model.bin`` with allow_pickle);
  the toy suite is such a directory, named ``toy/<name>``;
- ``HubSource``: a Hugging Face repo id whose branches ``step<N>`` are checkpoints
  (Pythia's layout), read through the hub cache; ``all`` lists the repo's branches, or,
  offline, the revisions already in the cache.

A ``Checkpoint`` gives lazy tensor access (weight probes read only what they need), a
content hash of its weight files, and a full Hugging Face model for probes that run it.
``trust_remote_code`` is never set.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ingest.architectures import EMBEDDING_TENSORS
from ingest.errors import TdwError
from ingest.revisions import Naming, revision_of, select
from ingest.tensors import TensorFile, check_regular

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
DEFAULT_TOY_ROOT = Path(os.environ.get("TDW_TOY_ROOT", "data/toy-suite"))


MAX_JSON_BYTES = 16 * 2**20  # config.json and the shard index are small
MAX_SHARDS = 10_000
# config.json sizes a model must respect before one is built (documented in the README)
CONFIG_LIMITS = {
    "num_hidden_layers": 1024,
    "n_layer": 1024,
    "num_layers": 1024,
    "hidden_size": 65536,
    "n_embd": 65536,
    "d_model": 65536,
    "intermediate_size": 1 << 20,
    "n_inner": 1 << 20,
    "num_attention_heads": 4096,
    "n_head": 4096,
    "num_key_value_heads": 4096,
    "vocab_size": 4_000_000,
    "max_position_embeddings": 1 << 22,
    "n_positions": 1 << 22,
}


def read_json(path: Path, what: str) -> object:
    """A small JSON file from a checkpoint (regular file, bounded size) or a one-line TdwError."""
    check_regular(path)
    if path.stat().st_size > MAX_JSON_BYTES:
        raise TdwError(f"{path}: {what} is larger than {MAX_JSON_BYTES >> 20} MiB")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise TdwError(f"{path}: {what} is not valid JSON ({str(e).splitlines()[0][:80]})") from None


def read_index(path: Path, folder_name: str) -> dict[str, str]:
    """The weight_map of a shard index (``model.safetensors.index.json`` or
    ``pytorch_model.bin.index.json``), checked: plain shard file names of the right kind."""
    index = read_json(path, "the shard index")
    return check_index(index, str(path), ".bin" if path.name.startswith("pytorch_model") else ".safetensors")


def check_index(index: object, where: str, suffix: str) -> dict[str, str]:
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if (
        not isinstance(weight_map, dict)
        or not weight_map
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items())
    ):
        raise TdwError(f"{where}: the shard index has no weight_map of tensor name -> file")
    shards = set(weight_map.values())
    if len(shards) > MAX_SHARDS:
        raise TdwError(f"{where}: {len(shards)} shards, more than {MAX_SHARDS}")
    for f in shards:
        if Path(f).name != f or f in (".", "..") or not f.endswith(suffix):
            raise TdwError(f"{where}: shard {f!r} must be a {suffix} file name beside the index")
    return weight_map


def weight_layout(folder: Path) -> tuple[list[Path], dict[str, str] | None]:
    """The weight files of a checkpoint folder and, when sharded, the index's weight_map.
    Every file must exist and be a regular file (a missing shard is an error here)."""
    for name in WEIGHT_FILES:
        p = folder / name
        if p.exists() or p.is_symlink():
            weight_map = read_index(p, folder.name) if name.endswith(".index.json") else None
            files = sorted(folder / f for f in set(weight_map.values())) if weight_map else [p]
            for f in files:
                if not (f.exists() or f.is_symlink()):
                    raise TdwError(f"{p}: the shard index names {f.name}, which is missing")
                check_regular(f)
            return files, weight_map
    raise TdwError(f"{folder}: no weight file ({', '.join(WEIGHT_FILES)})")


def _weight_files(folder: Path) -> list[Path]:
    return weight_layout(folder)[0]


def file_hash(paths: list[Path]) -> str:
    """sha256 over the weight files' bytes: the identity of a checkpoint's content."""
    h = hashlib.sha256()
    for p in paths:
        check_regular(p)
        with open(p, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()


@dataclass
class Checkpoint:
    model_id: str
    step: int
    revision: str
    source: str  # 'local' | 'toy' | 'hub'
    folder: Path | None = None  # resolved local folder (hub: a cache snapshot)
    hub_repo: str | None = None
    allow_pickle: bool = False
    tokens_seen: int | None = None  # where the revision name says it (OLMo's -tokens<M>B)
    _tensors: TensorFile | None = field(default=None, repr=False)
    _hash: str | None = field(default=None, repr=False)
    _model: tuple | None = field(default=None, repr=False)  # ((dtype, device), model) last loaded
    remote: tuple | None = field(default=None, repr=False)  # hub: (files, weight_map) cached or by ranges

    def files(self) -> list[Path]:
        if self.folder is None or not self.folder.is_dir():
            raise TdwError(f"{self.model_id}@{self.revision}: checkpoint folder {self.folder} does not exist")
        return _weight_files(self.folder)

    def tensors(self) -> TensorFile:
        if self._tensors is None and self.remote is not None:
            self._tensors = TensorFile(self.remote[0], allow_pickle=self.allow_pickle, weight_map=self.remote[1])
        if self._tensors is None:
            if self.folder is None or not self.folder.is_dir():
                raise TdwError(f"{self.model_id}@{self.revision}: checkpoint folder {self.folder} does not exist")
            files, weight_map = weight_layout(self.folder)
            self._tensors = TensorFile(files, allow_pickle=self.allow_pickle, weight_map=weight_map)
        return self._tensors

    def content_hash(self) -> str:
        if self._hash is None and self.remote is not None:
            from ingest.hubfiles import etag_hash

            self._hash = etag_hash(self.remote[0])
        if self._hash is None:
            self._hash = file_hash(self.files())
        return self._hash

    def suite(self) -> dict:
        """The training record of a toy-suite model (corpus, schedule, seed); {} elsewhere."""
        meta = self.folder.parent / "suite.json" if self.source in ("toy", "local") else None
        return json.loads(meta.read_text()) if meta is not None and meta.exists() else {}

    def config(self) -> dict:
        path = self.folder / "config.json"
        if not (path.exists() or path.is_symlink()):
            raise TdwError(f"{self.folder}: missing config.json")
        cfg = read_json(path, "config.json")
        if not isinstance(cfg, dict):
            raise TdwError(f"{path}: config.json is not a JSON object")
        for key, limit in CONFIG_LIMITS.items():
            v = cfg.get(key)
            if v is not None and not (type(v) is int and 0 < v <= limit):
                raise TdwError(f"{path}: {key} = {v!r} must be a positive integer up to {limit}")
        return cfg

    def validate(self) -> None:
        """A checkpoint must have a config.json that agrees with its weights' shapes."""
        cfg = self.config()
        names = self.tensors().names()
        vocab, width = cfg.get("vocab_size"), cfg.get("hidden_size", cfg.get("n_embd"))
        for name in EMBEDDING_TENSORS:
            if name in names and vocab and width:
                shape = self.tensors().shape(name)
                if len(shape) != 2 or shape[1] != width or shape[0] < vocab:
                    raise TdwError(
                        f"{self.folder}: config.json does not match the weights "
                        f"({name} is {'x'.join(map(str, shape))}, config says "
                        f"vocab_size={vocab}, hidden_size={width})"
                    )

    def release(self) -> None:
        """Drop the cached model and tensor reader (the pipeline calls it after a step)."""
        self._model, self._tensors = None, None

    def load_model(self, dtype=None, device: str = "cpu"):
        """The full Hugging Face causal LM (for probes that run the model), in eval mode.
        Probes of one checkpoint share it: it is loaded once per (dtype, device) and must
        not be modified (interventions act on activations, never on weights)."""
        import torch
        from transformers import AutoModelForCausalLM

        key = (dtype or torch.float32, str(device))
        if self._model is not None and self._model[0] == key:
            return self._model[1]
        self.tensors()  # validates the weight files with a clean error first
        from ingest.modelcheck import check_config_matches_weights

        check_config_matches_weights(self)
        where = self.hub_repo if self.source == "hub" else str(self.folder)
        kwargs = {"revision": self.revision} if self.source == "hub" else {}
        try:
            model = AutoModelForCausalLM.from_pretrained(
                where, dtype=dtype or torch.float32, trust_remote_code=False, **kwargs
            )
        except (OSError, ValueError, RuntimeError) as e:
            raise TdwError(f"cannot load {self.model_id}@{self.revision}: {str(e).strip().splitlines()[0]}") from None
        model = model.to(device).eval()
        self._model = (key, model)
        return model


class LocalSource:
    """Checkpoint folders on disk, named as the series names them (``step<N>/``,
    ``checkpoint-<N>/`` of a Trainer output directory, ``ckpt_<N>/`` ...)."""

    def __init__(
        self, root: Path, model_id: str, kind: str = "local", allow_pickle: bool = False, naming: Naming | None = None
    ):
        self.root, self.model_id, self.kind, self.allow_pickle = root, model_id, kind, allow_pickle
        self.naming = naming or Naming()

    def is_trainer_output(self) -> bool:
        """A Hugging Face Trainer output directory: ``checkpoint-<N>/trainer_state.json``."""
        return any(
            p.is_dir() and p.name.startswith("checkpoint-") and (p / "trainer_state.json").is_file()
            for p in self.root.iterdir()
        )

    def _folders(self) -> dict[int, Path]:
        """{step: folder} of every checkpoint directory (``step010/`` is step 10)."""
        found: dict[int, Path] = {}
        for p in sorted(self.root.iterdir()):
            hit = self.naming.match(p.name) if p.is_dir() else None
            if hit is None:
                continue
            step = hit[0]
            if step in found:
                raise TdwError(f"{self.root}: step {step} appears twice ({found[step].name}, {p.name})")
            found[step] = p
        return found

    def names(self) -> dict[int, str]:
        return {s: p.name for s, p in self._folders().items()}

    def tokens_seen(self) -> dict[int, int]:
        """{step: tokens} where the folder name says it (OLMo's ``-tokens<M>B``)."""
        out = {}
        for p in self._folders().values():
            step, tokens = self.naming.match(p.name)
            if tokens is not None:
                out[step] = tokens
        return out

    def steps(self) -> list[int]:
        found = self._folders()
        if not found:
            raise TdwError(
                f"{self.root}: no checkpoint directories matching the revision pattern "
                f"({self.naming.text}; e.g. step<N>/ or checkpoint-<N>/)"
            )
        return sorted(found)

    def checkpoint(self, step: int) -> Checkpoint:
        folder = self._folders().get(step, self.root / revision_of(step))
        hit = self.naming.match(folder.name)
        return Checkpoint(
            self.model_id,
            step,
            folder.name,
            self.kind,
            folder=folder,
            allow_pickle=self.allow_pickle,
            tokens_seen=hit[1] if hit else None,
        )

    def inputs(self) -> dict:
        """What the run was trained on (the toy suite records corpus, schedule and seed)."""
        meta = self.root / "suite.json"
        return json.loads(meta.read_text()) if meta.exists() else {}


class HubSource:
    """A Hugging Face repo whose ``step<N>`` branches are checkpoints (Pythia)."""

    def __init__(self, repo_id: str, allow_pickle: bool = False, naming: Naming | None = None):
        self.model_id = repo_id
        self.kind = "hub"
        self.allow_pickle = allow_pickle
        self.naming = naming or Naming()
        self._names: dict[int, str] = {}

    def _index(self, names: list[str]) -> list[int]:
        for n in names:
            hit = self.naming.match(n)
            if hit is not None and hit[0] not in self._names:
                self._names[hit[0]] = n
        return sorted(self._names)

    def names(self) -> dict[int, str]:
        return dict(self._names)

    def _cached_steps(self) -> list[int]:
        from huggingface_hub.constants import HF_HUB_CACHE

        refs = Path(HF_HUB_CACHE) / ("models--" + self.model_id.replace("/", "--")) / "refs"
        return self._index([p.name for p in refs.iterdir()] if refs.exists() else [])

    def steps(self) -> list[int]:
        from huggingface_hub import HfApi
        from huggingface_hub.errors import RepositoryNotFoundError

        try:
            refs = HfApi().list_repo_refs(self.model_id)
            names = [b.name for b in refs.branches]
        except RepositoryNotFoundError:
            raise TdwError(f"model {self.model_id!r} not found on the hub") from None
        except Exception:
            cached = self._cached_steps()
            if cached:
                return cached
            raise TdwError(
                f"cannot list revisions of {self.model_id!r}: the hub is unreachable and nothing is cached"
            ) from None
        return self._index(names)

    def checkpoint(self, step: int) -> Checkpoint:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

        if step not in self._names:
            try:
                self.steps()
            except TdwError:
                pass
        rev = self._names.get(step, revision_of(step))
        from huggingface_hub.constants import HF_HUB_OFFLINE

        if not HF_HUB_OFFLINE:
            from ingest.hubfiles import layout

            try:
                folder = Path(hf_hub_download(self.model_id, "config.json", revision=rev)).parent
                found = layout(self.model_id, rev, self.allow_pickle)
            except RepositoryNotFoundError:
                raise TdwError(f"model {self.model_id!r} not found on the hub") from None
            except RevisionNotFoundError:
                raise TdwError(f"revision {rev!r} not found for {self.model_id!r}") from None
            except EntryNotFoundError:
                raise TdwError(f"{self.model_id}@{rev}: no config.json") from None
            except TdwError:
                raise
            except Exception:
                found = folder = None  # unreachable: fall back to what the cache holds
            if found is not None:
                return self._checkpoint(step, rev, folder, remote=found)
        folder = None
        for name in ("model.safetensors", "pytorch_model.bin"):
            try:
                folder = Path(hf_hub_download(self.model_id, name, revision=rev)).parent
                hf_hub_download(self.model_id, "config.json", revision=rev)
                break
            except RepositoryNotFoundError:
                raise TdwError(f"model {self.model_id!r} not found on the hub") from None
            except RevisionNotFoundError:
                raise TdwError(f"revision {rev!r} not found for {self.model_id!r}") from None
            except EntryNotFoundError:
                continue
            except Exception as e:
                raise TdwError(
                    f"cannot fetch {self.model_id}@{rev}: hub unreachable and not cached ({type(e).__name__})"
                ) from None
        if folder is None:
            raise TdwError(f"{self.model_id}@{rev}: no model.safetensors or pytorch_model.bin")
        return self._checkpoint(step, rev, folder)

    def _checkpoint(self, step: int, rev: str, folder: Path, remote: tuple | None = None) -> Checkpoint:
        hit = self.naming.match(rev)
        return Checkpoint(
            self.model_id,
            step,
            rev,
            "hub",
            folder=folder,
            hub_repo=self.model_id,
            allow_pickle=self.allow_pickle,
            remote=remote,
            tokens_seen=hit[1] if hit else None,
        )

    def inputs(self) -> dict:
        return {}


def open_source(
    spec: str, toy_root: Path | None = None, allow_pickle: bool = False, revision_pattern: str | None = None
):
    """A source from what the user typed: a toy-suite model, a local directory or a hub id;
    ``revision_pattern`` is a preset name or a regex with a ``step`` group (ingest.revisions)."""
    naming = Naming(revision_pattern)
    toy_root = Path(toy_root or DEFAULT_TOY_ROOT)
    if spec.startswith("toy/"):
        folder = toy_root / spec[4:]
        if not folder.is_dir():
            raise TdwError(f"toy model {spec!r} not found under {toy_root} (run `tdw toy-suite` first)")
        return LocalSource(folder, spec, "toy", allow_pickle, naming)
    path = Path(spec).expanduser()
    if path.is_dir():
        return LocalSource(path.resolve(), f"local/{path.resolve().name}", "local", allow_pickle, naming)
    parts = spec.split("/")
    if len(parts) == 2 and all(parts) and not spec.startswith((".", "/", "~")):
        return HubSource(spec, allow_pickle, naming)
    raise TdwError(f"no such model: {spec!r} is neither a directory, a toy/<name> model nor a hub id")


def checkpoints(source, spec: str = "all") -> list[int]:
    """The steps of ``source`` selected by the revision spec, ascending."""
    steps = source.steps()
    return select(steps, spec, source.naming, source.names())
