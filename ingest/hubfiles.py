"""Which weight files a hub revision has, and how each is read: from the cache when it is
there, by byte ranges (ingest.remote) when it is not.

Only small files are downloaded up front (``config.json``, a shard index); a weight file
not in the cache becomes a ``RemoteFile`` on its resolve URL, so a tensor probe reads one
header and one tensor. A pickle shard cannot be read by ranges: it is downloaded whole,
and only with ``--allow-pickle``. The content identity of a remote file is its hub ETag
(for LFS files the sha256 of its bytes, the name of its blob in the cache), so it costs no
download.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ingest.errors import TdwError
from ingest.remote import RemoteFile

SINGLE = ("model.safetensors", "pytorch_model.bin")
INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def _cached(repo: str, name: str, rev: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(repo, name, revision=rev)
    return Path(hit) if isinstance(hit, str) else None


def _file(repo: str, name: str, rev: str, allow_pickle: bool, etag: str | None = None):
    """A cached Path, a downloaded pickle, or a RemoteFile read by ranges."""
    from huggingface_hub import hf_hub_download, hf_hub_url
    from huggingface_hub.utils import build_hf_headers

    local = _cached(repo, name, rev)
    if local is not None:
        return local
    if name.endswith(".bin"):
        return Path(hf_hub_download(repo, name, revision=rev)) if allow_pickle else RemoteFile("", name)
    f = RemoteFile(
        hf_hub_url(repo, name, revision=rev),
        name,
        headers=build_hf_headers(),
        fallback=lambda: Path(hf_hub_download(repo, name, revision=rev)),
    )
    f.etag = etag
    return f


def layout(repo: str, rev: str, allow_pickle: bool) -> tuple[list, dict[str, str] | None] | None:
    """(files, weight_map or None) of a hub revision, or None when it has no weight file.
    Hub errors (missing repo, revision, network) propagate for the caller to word."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import EntryNotFoundError

    from ingest.sources import read_index

    for name in (SINGLE[0], INDEXES[0], SINGLE[1], INDEXES[1]):
        if name in INDEXES:
            try:
                path = Path(hf_hub_download(repo, name, revision=rev))
            except EntryNotFoundError:
                continue
            weight_map = read_index(path, rev)
            return [_file(repo, s, rev, allow_pickle) for s in sorted(set(weight_map.values()))], weight_map
        if _cached(repo, name, rev) is not None:
            return [_cached(repo, name, rev)], None
        try:
            meta = get_hf_file_metadata(hf_hub_url(repo, name, revision=rev))
        except EntryNotFoundError:
            continue
        return [_file(repo, name, rev, allow_pickle, etag=meta.etag)], None
    return None


def etag_hash(files: list) -> str:
    """The content identity of hub weight files: sha256 over their ETags (blob names)."""
    from huggingface_hub import get_hf_file_metadata

    h = hashlib.sha256()
    for f in files:
        if isinstance(f, Path):  # noqa: SIM108
            tag = f.resolve().name  # the cache stores each file as blobs/<etag>
        else:
            tag = getattr(f, "etag", None) or get_hf_file_metadata(f.url).etag
        if not tag:
            raise TdwError(f"{f.name}: the hub gave no ETag to identify its content")
        h.update(f"{f.name}:{tag.strip(chr(34))}\n".encode())
    return h.hexdigest()
