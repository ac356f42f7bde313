import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from ingest.errors import TdwError
from ingest.tensors import TensorFile, select_tensors

NAMES = [
    "lm_head.weight",
    "gpt_neox.embed_in.weight",
    "gpt_neox.layers.0.attention.dense.weight",
    "gpt_neox.layers.1.attention.dense.weight",
    "gpt_neox.layers.0.mlp.dense_h_to_4h.weight",
]


def test_aliases_and_globs():
    assert select_tensors(NAMES, "unembed,embed") == ["lm_head.weight", "gpt_neox.embed_in.weight"]
    assert select_tensors(NAMES, "gpt_neox.layers.*.attention.*") == NAMES[2:4]
    # tied embeddings: the unembedding is the input embedding
    assert select_tensors(["transformer.wte.weight"], "unembed") == ["transformer.wte.weight"]


def test_pattern_matching_nothing_is_an_error():
    with pytest.raises(TdwError, match="matches no tensor"):
        select_tensors(NAMES, "unembed,*.rotary.*")


@pytest.fixture
def st_file(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file(
        {
            "embed_out.weight": torch.arange(12, dtype=torch.float32).reshape(3, 4),
            "b": torch.ones(5, dtype=torch.bfloat16),
        },
        str(path),
    )
    return path


def test_reads_selected_tensors_under_canonical_names(st_file):
    tf = TensorFile([st_file])
    assert sorted(tf.names()) == ["b", "lm_head.weight"]
    assert np.array_equal(tf.read("lm_head.weight"), np.arange(12, dtype=np.float32).reshape(3, 4))
    assert tf.read("b").dtype == np.float32 and tf.shape("lm_head.weight") == (3, 4)


def test_truncated_and_foreign_files_are_clean_errors(st_file, tmp_path):
    data = st_file.read_bytes()
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(data[:-10])
    with pytest.raises(TdwError, match="truncated"):
        TensorFile([cut])
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"this is not a checkpoint at all" * 10)
    with pytest.raises(TdwError, match="not a safetensors file"):
        TensorFile([junk])


def test_pickle_needs_the_flag_and_loads_weights_only(tmp_path):
    path = tmp_path / "pytorch_model.bin"
    torch.save({"embed_out.weight": torch.ones(2, 3)}, path)
    with pytest.raises(TdwError, match="--allow-pickle"):
        TensorFile([path])
    tf = TensorFile([path], allow_pickle=True)
    assert tf.read("lm_head.weight").sum() == 6

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    evil = tmp_path / "evil" / "pytorch_model.bin"
    evil.parent.mkdir()
    torch.save({"w": Evil()}, evil)
    with pytest.raises(TdwError, match="cannot read pickle checkpoint safely"):
        TensorFile([evil], allow_pickle=True)
