"""Sharded checkpoints (both index formats) and byte-range reads of single tensors.

The range reader is tested against a real HTTP server on 127.0.0.1 (http.server, with
Range support written here) that counts the bytes it sends: a one-tensor read of a sharded
checkpoint must cost the tensor plus the headers of the shard that holds it, nothing more."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from ingest.errors import TdwError
from ingest.remote import RemoteFile
from ingest.sources import open_source
from ingest.tensors import TensorFile

SHARDS = {  # shard -> {tensor: shape}; the unembedding alone in the last shard
    "model-00001-of-00003.safetensors": {
        "gpt_neox.embed_in.weight": (256, 64),
        "gpt_neox.final_layer_norm.weight": (64,),
    },
    "model-00002-of-00003.safetensors": {"gpt_neox.layers.0.mlp.dense_h_to_4h.weight": (256, 64)},
    "model-00003-of-00003.safetensors": {"embed_out.weight": (256, 64)},
}


def make_sharded(folder: Path, seed: int = 0, pickle: bool = False) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    g = torch.Generator().manual_seed(seed)
    weight_map, values = {}, {}
    for shard, tensors in SHARDS.items():
        ts = {k: torch.randn(*shape, generator=g) for k, shape in tensors.items()}
        name = shard.replace("model-", "pytorch_model-").replace(".safetensors", ".bin") if pickle else shard
        torch.save(ts, folder / name) if pickle else save_file(ts, str(folder / name))
        weight_map.update({k: name for k in ts})
        values.update({k: t.numpy() for k, t in ts.items()})
    (folder / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["GPTNeoXForCausalLM"],
                "model_type": "gpt_neox",
                "vocab_size": 256,
                "hidden_size": 64,
                "num_hidden_layers": 1,
                "num_attention_heads": 4,
                "intermediate_size": 256,
            }
        )
    )
    index = "pytorch_model.bin.index.json" if pickle else "model.safetensors.index.json"
    (folder / index).write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return values


def range_body(data: bytes, range_header: str, ranges: bool) -> tuple[bytes, str | None]:
    """The body a test server sends for one ``Range: bytes=a-b`` header (the whole file when
    there is none or ``ranges`` is False) and its Content-Range, None for a full response."""
    m = re.fullmatch(r"bytes=(\d+)-(\d+)", range_header)
    if not (m and ranges):
        return data, None
    a, b = int(m.group(1)), min(int(m.group(2)), len(data) - 1)
    return data[a : b + 1], f"bytes {a}-{b}/{len(data)}"


class LocalServer:
    """A ThreadingHTTPServer on 127.0.0.1 serving in a daemon thread until close()."""

    def start(self, handler) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class Server(LocalServer):
    """http.server serving a folder, honouring single ``Range: bytes=a-b`` requests (unless
    ``ranges`` is False) and counting body bytes sent per path."""

    def __init__(self, root: Path, ranges: bool = True):
        self.sent: dict[str, int] = {}
        outer = self

        class Handler(SimpleHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                path = Path(self.translate_path(self.path))
                if not path.is_file():
                    self.send_error(404)
                    return
                body, content_range = range_body(path.read_bytes(), self.headers.get("Range", ""), ranges)
                self.send_response(206 if content_range else 200)
                if content_range:
                    self.send_header("Content-Range", content_range)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                outer.sent[self.path] = outer.sent.get(self.path, 0) + len(body)  # before the client can see it
                self.wfile.write(body)

        self.start(partial(Handler, directory=str(root)))


def _remote(server: Server, folder: Path) -> tuple[list[RemoteFile], dict]:
    weight_map = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
    return [RemoteFile(f"{server.url}/{s}", s) for s in sorted(set(weight_map.values()))], weight_map


def test_range_reads_fetch_one_tensor_and_its_shard_header(tmp_path):
    values = make_sharded(tmp_path / "ck")
    server = Server(tmp_path / "ck")
    try:
        files, weight_map = _remote(server, tmp_path / "ck")
        tf = TensorFile(files, weight_map=weight_map)
        assert server.sent == {}  # the index alone names the tensors
        assert sorted(tf.names())[0] == "gpt_neox.embed_in.weight"
        got = tf.read("lm_head.weight")
        np.testing.assert_array_equal(got, values["embed_out.weight"])
        shard = "/model-00003-of-00003.safetensors"
        header_len = 8 + int.from_bytes((tmp_path / "ck" / shard[1:]).read_bytes()[:8], "little")
        assert set(server.sent) == {shard}  # the other shards are never touched
        assert server.sent[shard] == values["embed_out.weight"].nbytes + header_len
        assert tf.bytes_read == server.sent[shard]
        whole = sum(p.stat().st_size for p in (tmp_path / "ck").glob("*.safetensors"))
        print(
            f"\nweights job on a 3-shard fixture: {server.sent[shard]} bytes with range reads, "
            f"{whole} bytes by full download ({whole / server.sent[shard]:.1f}x)"
        )
    finally:
        server.close()


def test_a_server_refusing_ranges_falls_back_to_one_download(tmp_path, capsys):
    import ingest.remote as remote

    remote._WARNED[0] = False
    values = make_sharded(tmp_path / "ck", seed=1)
    server = Server(tmp_path / "ck", ranges=False)
    try:
        files, weight_map = _remote(server, tmp_path / "ck")
        tf = TensorFile(files, weight_map=weight_map)
        np.testing.assert_array_equal(tf.read("gpt_neox.embed_in.weight"), values["gpt_neox.embed_in.weight"])
        np.testing.assert_array_equal(tf.read("lm_head.weight"), values["embed_out.weight"])
        shard = tmp_path / "ck" / "model-00001-of-00003.safetensors"
        assert (
            server.sent["/model-00001-of-00003.safetensors"] == shard.stat().st_size
        )  # the refused answer is the download
        assert capsys.readouterr().err.count("refused byte-range reads") == 1
    finally:
        server.close()


def test_local_sharded_checkpoints_open_only_the_needed_shard(tmp_path):
    values = make_sharded(tmp_path / "run" / "step0")
    tf = open_source(str(tmp_path / "run")).checkpoint(0).tensors()
    np.testing.assert_array_equal(tf.read("lm_head.weight"), values["embed_out.weight"])
    assert tf._opened == {"model-00003-of-00003.safetensors"}
    bins = make_sharded(tmp_path / "pk" / "step0", pickle=True)
    with pytest.raises(TdwError, match="--allow-pickle"):
        open_source(str(tmp_path / "pk")).checkpoint(0).tensors()
    tf = open_source(str(tmp_path / "pk"), allow_pickle=True).checkpoint(0).tensors()
    np.testing.assert_array_equal(tf.read("gpt_neox.embed_in.weight"), bins["gpt_neox.embed_in.weight"])


@pytest.mark.slow  # whole ingests in child processes (each imports torch and Great Expectations)
def test_bad_shards_fail_their_job_and_the_batch_goes_on(tmp_path):
    run = tmp_path / "run"
    for step in (0, 1, 2):
        make_sharded(run / f"step{step}", seed=step)
    (run / "step1" / "model-00003-of-00003.safetensors").unlink()  # the index names a missing shard
    save_file({"other.weight": torch.zeros(2)}, str(run / "step2" / "model-00003-of-00003.safetensors"))
    wh = tmp_path / "wh" / "w.duckdb"
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from tdw.cli import main; main()",
            "ingest",
            str(run),
            "--probes",
            "weights",
            "--tensors",
            "unembed",
            "--warehouse",
            str(wh),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr + proc.stdout
    import duckdb

    con = duckdb.connect(str(wh), read_only=True)
    runs = dict(
        ((s, (st, e)) for s, st, e in con.execute("SELECT step, status, error FROM raw.ingest_runs").fetchall())
    )
    con.close()
    assert runs[0][0] == "success"
    assert runs[1][0] == "failed" and "names model-00003-of-00003.safetensors, which is missing" in runs[1][1]
    assert runs[2][0] == "failed" and "disagrees with the index" in runs[2][1]
    assert all("\n" not in (e or "") for _, e in runs.values())
