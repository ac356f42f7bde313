"""A tiny real checkpoint suite for the hostile-input tests: GPT-NeoX models (the real
Hugging Face class, randomly initialised, seeded) saved with ``save_pretrained`` as
``<root>/step<N>/`` folders, in well under a second."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

SMALL = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
             vocab_size=64, max_position_embeddings=64)


def make_suite(root: Path, steps=(0, 1, 2)) -> Path:
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM
    root.mkdir(parents=True, exist_ok=True)
    for step in steps:
        torch.manual_seed(step)
        GPTNeoXForCausalLM(GPTNeoXConfig(**SMALL)).save_pretrained(root / f"step{step}")
    return root


def make_llama_config(folder: Path) -> dict:
    from transformers import LlamaConfig
    cfg = LlamaConfig(**SMALL).to_dict()
    cfg["architectures"] = ["LlamaForCausalLM"]
    return cfg


def copy_suite(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def header(path: Path) -> tuple[dict, bytes]:
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_header(path: Path, head: dict | str, data: bytes) -> None:
    text = (head if isinstance(head, str) else json.dumps(head)).encode()
    path.write_bytes(len(text).to_bytes(8, "little") + text + data)


def raw_tables(warehouse: Path) -> dict[str, list]:
    """Every raw table's rows (sorted), for comparing a warehouse before and after."""
    import duckdb
    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        names = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables "
                                           "WHERE table_schema='raw' ORDER BY 1").fetchall()]
        return {n: sorted(map(repr, con.execute(f'SELECT * FROM raw."{n}"').fetchall())) for n in names}
    finally:
        con.close()
