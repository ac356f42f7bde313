"""Byte-range reads of checkpoint files over HTTP.

A tensor probe of a large hub checkpoint needs one tensor (Pythia-12B's unembedding is
0.5 GB of 24 GB), so a ``RemoteFile`` reads the safetensors header and then only the byte
ranges of the tensors asked for (``Range: bytes=a-b``), instead of downloading the file.
A server that ignores ``Range`` (answers 200 with the whole body) is not read through
twice: the file is fetched whole once by ``fallback`` (for the hub: ``hf_hub_download``
into the cache), a warning is printed once per process, and later reads are local.
``bytes_received`` counts the body bytes that crossed the network.
"""

from __future__ import annotations

import re
import sys
import tempfile
import urllib.request
from collections.abc import Callable
from pathlib import Path

from ingest.errors import TdwError

_WARNED = [False]
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
TIMEOUT_S = 60


def warn_once(message: str) -> None:
    if not _WARNED[0]:
        _WARNED[0] = True
        print(f"warning: {message}", file=sys.stderr)


class RemoteFile:
    """One file at ``url`` read by byte ranges; ``name`` is its file name (``x.safetensors``)."""

    def __init__(
        self, url: str, name: str, headers: dict[str, str] | None = None, fallback: Callable[[], Path] | None = None
    ):
        self.url, self.name, self.headers = url, name, dict(headers or {})
        self.fallback = fallback
        self.bytes_received = 0
        self.local: Path | None = None  # set once the whole file has been fetched
        self._size: int | None = None
        self._head = b""  # the first bytes, read once to learn the size

    def __repr__(self) -> str:
        return f"RemoteFile({self.url!r})"

    @property
    def size(self) -> int:
        if self._size is None:
            self._head = self.read(0, 8)
        return self._size

    def read(self, start: int, n: int) -> bytes:
        """Bytes [start, start + n) of the file."""
        if n <= 0:
            return b""
        if start + n <= len(self._head):
            return self._head[start : start + n]
        if self.local is not None:
            with open(self.local, "rb") as f:
                f.seek(start)
                return f.read(n)
        req = urllib.request.Request(self.url, headers={**self.headers, "Range": f"bytes={start}-{start + n - 1}"})
        try:
            resp = urllib.request.urlopen(req, timeout=TIMEOUT_S)
        except Exception as e:
            raise TdwError(
                f"{self.name}: cannot read {self.url} ({type(e).__name__}: "
                f"{str(e).splitlines()[0][:80] if str(e) else ''})"
            ) from None
        with resp:
            if resp.status == 206:
                m = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
                if m is None or int(m.group(1)) != start:
                    raise TdwError(
                        f"{self.name}: the server answered a range request with "
                        f"Content-Range {resp.headers.get('Content-Range')!r}"
                    )
                self._size = int(m.group(3))
                data = resp.read(n)
                self.bytes_received += len(data)
                if len(data) != min(n, self._size - start):
                    raise TdwError(f"{self.name}: short read from {self.url} ({len(data)} of {n} bytes)")
                return data
            warn_once(
                f"{self.url.split('/')[2] if '//' in self.url else self.url} refused byte-range reads "
                f"(HTTP {resp.status}); downloading whole files instead"
            )
            if self.fallback is not None:
                resp.close()
                self.local = self.fallback()
            else:
                self.local = self._download(resp)
        self._size = self.local.stat().st_size
        return self.read(start, n)

    def _download(self, resp) -> Path:
        tmp = tempfile.NamedTemporaryFile(prefix="tdw-", suffix="-" + self.name, delete=False)  # noqa: SIM115
        with tmp:
            while chunk := resp.read(1 << 22):
                self.bytes_received += len(chunk)
                tmp.write(chunk)
        return Path(tmp.name)
