"""A hub revision not in the cache, read by byte ranges: a hub-like server on 127.0.0.1
(resolve endpoint with ETag, X-Repo-Commit and Range support, a refs listing) stands in for
huggingface.co through HF_ENDPOINT; the test counts the bytes it sent for a weights job."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import duckdb
import pytest

from tests.integration.test_sharded import LocalServer, make_sharded, range_body

pytestmark = pytest.mark.slow  # fills a hub cache through a local server and ingests in child processes

REPO = "EleutherAI/pythia-sharded"
COMMIT = "a" * 40


class FakeHub(LocalServer):
    def __init__(self, root: Path, ranges: bool = True):
        self.sent: dict[str, int] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _file(self):
                m = re.fullmatch(rf"/{REPO}/resolve/([^/]+)/(.+)", self.path.split("?")[0])
                return (root / m.group(1) / m.group(2)) if m else None

            def _head(self, path: Path, status: int, length: int, extra=()):
                self.send_response(status)
                etag = hashlib.sha256(path.read_bytes()).hexdigest()
                self.send_header("ETag", f'"{etag}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Content-Length", str(length))
                for k, v in extra:
                    self.send_header(k, v)
                self.end_headers()

            def do_HEAD(self):
                path = self._file()
                if path is None or not path.is_file():
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self._head(path, 200, path.stat().st_size)

            def do_GET(self):
                if self.path.startswith(f"/api/models/{REPO}/refs"):
                    body = json.dumps(
                        {
                            "branches": [
                                {"name": p.name, "ref": f"refs/heads/{p.name}", "targetCommit": COMMIT}
                                for p in root.iterdir()
                            ],
                            "tags": [],
                            "converts": [],
                        }
                    ).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                path = self._file()
                if path is None or not path.is_file():
                    self.do_HEAD()
                    return
                body, content_range = range_body(path.read_bytes(), self.headers.get("Range", ""), ranges)
                if content_range:
                    self._head(path, 206, len(body), [("Content-Range", content_range)])
                else:
                    self._head(path, 200, len(body))
                outer.sent[path.name] = outer.sent.get(path.name, 0) + len(body)  # before the client can see it
                self.wfile.write(body)

        self.start(Handler)


def _ingest(
    tmp_path, hub: FakeHub, wh: Path, revisions: str = "step0", tensors: str = "unembed"
) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        HF_ENDPOINT=hub.url,
        HF_HUB_CACHE=str(tmp_path / "cache"),
        HF_HUB_OFFLINE="0",
        HF_HUB_DISABLE_XET="1",
        HF_HUB_DISABLE_TELEMETRY="1",
    )
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "from tdw.cli import main; main()",
            "ingest",
            REPO,
            "--revisions",
            revisions,
            "--probes",
            "weights",
            "--tensors",
            tensors,
            "--warehouse",
            str(wh),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_weights_job_reads_one_tensor_by_ranges(tmp_path):
    make_sharded(tmp_path / "hub" / "step0")
    hub = FakeHub(tmp_path / "hub")
    try:
        proc = _ingest(tmp_path, hub, tmp_path / "wh" / "w.duckdb")
    finally:
        hub.close()
    assert proc.returncode == 0, proc.stderr[-2000:]
    shard = tmp_path / "hub" / "step0" / "model-00003-of-00003.safetensors"
    weights = {k: v for k, v in hub.sent.items() if "safetensors" in k and not k.endswith(".json")}

    def header(p: Path) -> int:
        return 8 + int.from_bytes(p.read_bytes()[:8], "little")

    # the unembedding and its shard's header; the embedding shard's header alone (the check of
    # config.json against the embedding's shape); the middle shard never
    first = shard.parent / "model-00001-of-00003.safetensors"
    assert weights == {shard.name: 256 * 64 * 4 + header(shard), first.name: header(first)}, hub.sent
    whole = sum(p.stat().st_size for p in shard.parent.glob("*.safetensors"))
    print(f"\nhub weights job, 3-shard fixture: {sum(weights.values())} bytes by ranges vs {whole} whole")
    con = duckdb.connect(str(tmp_path / "wh" / "w.duckdb"), read_only=True)
    assert con.execute("SELECT status FROM raw.ingest_runs").fetchall() == [("success",)]
    con.close()


def test_a_hub_refusing_ranges_downloads_whole_files_and_says_so_once(tmp_path):
    for step in (0, 1):  # two checkpoints, two needed shards each: four refused files, one warning
        make_sharded(tmp_path / "hub" / f"step{step}", seed=3 + step)
    hub = FakeHub(tmp_path / "hub", ranges=False)
    try:
        proc = _ingest(tmp_path, hub, tmp_path / "wh" / "w.duckdb", revisions="step0,step1", tensors="unembed,embed")
    finally:
        hub.close()
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.count("refused byte-range reads") == 1
    assert "model-00002-of-00003.safetensors" not in hub.sent  # still only the shards needed
    cached = list((tmp_path / "cache").rglob("model-00003-of-00003.safetensors"))
    assert cached, "the refused shard is downloaded into the hub cache"
