"""Classes 3 to 7 of issue 12, one regression test each (classes 1-2: test_sql_lockdown.py
and test_serve_lockdown.py): each replays the hostile run's reproduction on a tiny real
checkpoint suite (GPT-NeoX, ``save_pretrained``) and a real warehouse."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest

from ingest.errors import TdwError
from ingest.sources import LocalSource
from tests.conftest import sampled
from tests.faults.tinymodel import copy_suite, header, make_llama_config, make_suite, write_header
from warehouse.pipeline import ingest

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    return make_suite(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture
def data(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TDW_DATA_DIR", str(tmp_path))
    return tmp_path


def tdw(*args: str, data: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tdw", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**ENV, "TDW_DATA_DIR": str(data)},
        cwd=data,
    )


def one_line_refusal(out: subprocess.CompletedProcess) -> None:
    assert out.returncode == 1, (out.returncode, out.stderr[-2000:])
    err = out.stderr.strip().splitlines()
    assert err and err[-1].startswith("error: ") and "Traceback" not in out.stderr, out.stderr[-2000:]
    assert "internal error" not in out.stderr


# ---------------------------------------------------------------- class 3: wrong measurements
@pytest.mark.parametrize("forge", sampled(["reverse", "overlap", "negative", "shape", "duplicate"], every=2))
def test_class3a_forged_safetensors_offsets_fail_the_job(suite, data, forge):
    src = copy_suite(suite, data / "m")
    path = src / "step1" / "model.safetensors"
    head, blob = header(path)
    names = [k for k in head if k != "__metadata__"]
    a, b = names[0], names[1]
    text = None
    if forge == "reverse":
        head[a]["data_offsets"] = head[a]["data_offsets"][::-1]
    elif forge == "overlap":
        head[b]["data_offsets"] = [
            head[a]["data_offsets"][0],
            head[a]["data_offsets"][0] + (head[b]["data_offsets"][1] - head[b]["data_offsets"][0]),
        ]
    elif forge == "negative":
        head[a]["data_offsets"][0] = -4
    elif forge == "shape":
        head[a]["shape"] = [1] + head[a]["shape"]
        head[a]["shape"][-1] += 1
    else:
        text = json.dumps(head)[:-1] + f', "{a}": ' + json.dumps(head[b]) + "}"
    write_header(path, text or head, blob)
    from safetensors import safe_open

    with pytest.raises(Exception):  # the reference refuses the file...  # noqa: B017, SIM117
        with safe_open(str(path), "np") as f:
            [f.get_tensor(k) for k in f.keys()]  # noqa: SIM118 (safe_open is no mapping)
    r = ingest(str(src), probes="weights", warehouse=data / "w.duckdb", progress=False)
    assert [s for s, _, _ in r.failed] == [1] and {s for s, _ in r.done} == {0, 2}  # ...and so do we
    con = duckdb.connect(str(data / "w.duckdb"), read_only=True)
    assert con.execute("select count(*) from raw.ingest_runs where step=1 and status='failed'").fetchone()[0] == 1
    assert con.execute("select count(*) from raw.weight_stats where step=1").fetchone()[0] == 0


def test_class3b_config_declaring_another_architecture_is_refused(suite, data):
    src = copy_suite(suite, data / "m")
    (src / "step1" / "config.json").write_text(json.dumps(make_llama_config(src / "step1")))
    ckpt = LocalSource(src, "m").checkpoint(1)
    with pytest.raises(TdwError, match="declares LlamaForCausalLM but the weights lack"):
        ckpt.load_model()
    LocalSource(src, "m").checkpoint(0).load_model()  # the real architecture still loads


@pytest.mark.parametrize("value", sampled(["0", "-5", "nan", "abc", "1e12", "1e30"]))
def test_class3c_param_values_are_typed_and_range_checked(suite, data, value):
    out = tdw("ingest", str(suite), "--probes", "weights", "--param", f"weights.msd_sample={value}", data=data)
    one_line_refusal(out)
    assert "msd_sample" in out.stderr and not (data / "data").exists() and not list(data.glob("*.duckdb"))


@pytest.mark.slow  # four commands in child processes, one of them a dbt build
def test_class3d_build_on_the_serving_snapshot_is_refused(data):
    snap = data / "warehouse.serving.duckdb"
    duckdb.connect(str(snap)).execute("create schema marts; create table marts.t as select 1 x").close()
    before = snap.read_bytes()
    for cmd in (["build"], ["ingest", "toy/x"], ["publish"], ["load-lake", str(data)]):
        one_line_refusal(tdw(*cmd, "--warehouse", str(snap), data=data))
    assert snap.read_bytes() == before


# ---------------------------------------------------------------- class 4: hangs, unbounded work
@pytest.mark.parametrize("special", ["dev_zero", "fifo", "index_to_dev_zero"])
def test_class4_special_files_are_refused_before_hashing(suite, data, special):
    src = copy_suite(suite, data / "m")
    st = src / "step1" / "model.safetensors"
    st.unlink()
    if special == "dev_zero":
        st.symlink_to("/dev/zero")
    elif special == "fifo":
        os.mkfifo(st)
    else:
        head, _ = header(suite / "step1" / "model.safetensors")
        (src / "step1" / "zero.safetensors").symlink_to("/dev/zero")
        (src / "step1" / "model.safetensors.index.json").write_text(
            json.dumps({"weight_map": {k: "zero.safetensors" for k in head if k != "__metadata__"}})
        )
    t0 = time.monotonic()
    r = ingest(str(src), probes="weights", warehouse=data / "w.duckdb", progress=False)
    assert time.monotonic() - t0 < 60
    assert [s for s, _, _ in r.failed] == [1] and "regular file" in r.failed[0][2]


@pytest.mark.parametrize(
    "args",
    sampled(
        [
            ["--revisions", "step0:step1000000000000"],
            ["--param", "graph.n_prompts=1e12"],
            ["--param", "graph.n_prompts=1000000000000"],
        ]
    ),
)
def test_class4_unbounded_requests_are_refused_up_front(suite, data, args):
    one_line_refusal(tdw("ingest", str(suite), *args, data=data, timeout=60))


def test_class4_huge_layer_count_fails_the_job_quickly(suite, data):
    src = copy_suite(suite, data / "m")
    cfg = json.loads((src / "step1" / "config.json").read_text())
    cfg["num_hidden_layers"] = 10**9
    (src / "step1" / "config.json").write_text(json.dumps(cfg))
    r = ingest(str(src), probes="weights", warehouse=data / "w.duckdb", progress=False)
    assert [s for s, _, _ in r.failed] == [1] and "num_hidden_layers" in r.failed[0][2]


# ---------------------------------------------------------------- class 5: the batch goes on
@pytest.mark.slow  # whole ingests in child processes (each imports torch and Great Expectations)
@pytest.mark.parametrize("bad", ["header", "config", "index"])
def test_class5_a_bad_checkpoint_is_a_failed_job_and_the_batch_goes_on(suite, data, bad):
    src = copy_suite(suite, data / "m")
    folder = src / "step1"
    if bad == "header":
        blob = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(blob[:8] + b"{not json" + blob[17:])
    elif bad == "config":
        (folder / "config.json").write_text('{"model_type": "gpt_neox", "hidden_size": "sixteen"')
    else:
        (folder / "model.safetensors.index.json").write_text('{"weight_map": {"a": "../../etc/passwd"}}')
        (folder / "model.safetensors").unlink()
    out = tdw("ingest", str(src), "--probes", "weights", data=data)
    assert out.returncode == 1 and "Traceback" not in out.stderr and "internal error" not in out.stderr
    assert "3 checkpoints, 2 jobs loaded" in out.stdout and "failed step1 weights" in out.stdout
    rows = (
        duckdb.connect(str(data / "data" / "warehouse.duckdb"), read_only=True)
        .execute("select step, status, error from raw.ingest_runs order by step")
        .fetchall()
    )
    assert [(s, st) for s, st, _ in rows] == [(0, "success"), (1, "failed"), (2, "success")]
    assert "\n" not in rows[1][2]


@pytest.mark.parametrize("case", sampled(["folder", "seed", "unicode", "misspelt"], every=2))
def test_class5_overflowing_and_misspelt_values_are_refused_up_front(suite, data, case):
    src = copy_suite(suite, data / "m")
    args = ["--probes", "weights"]
    if case == "folder":
        shutil.copytree(src / "step1", src / "step99999999999999999999")
        args += ["--revisions", "step99999999999999999999"]
    elif case == "seed":
        args += ["--param", "weights.sample_seed=1e30"]
    elif case == "unicode":
        args += ["--revisions", "step١"]
    else:
        args += ["--param", "weight.msd_sample=5"]
    one_line_refusal(tdw("ingest", str(src), *args, data=data))
    assert not (data / "data" / "warehouse.duckdb").exists()


# ---------------------------------------------------------------- class 6: no tracebacks
@pytest.mark.slow  # whole ingests in child processes (each imports torch and Great Expectations)
def test_class6_environment_failures_are_one_line(suite, data):
    wh = data / "data" / "warehouse.duckdb"
    assert tdw("ingest", str(suite), "--probes", "weights", data=data).returncode == 0
    snap = wh.with_name("warehouse.serving.duckdb")  # serve on a truncated snapshot
    snap.write_bytes(wh.read_bytes()[:5000])
    one_line_refusal(tdw("serve", "--port", "0", "--warehouse", str(wh), data=data, timeout=30))
    one_line_refusal(tdw("sql", "select 1", "--warehouse", str(wh), data=data))
    damaged = data / "data" / "damaged.duckdb"  # check on a damaged file
    damaged.write_bytes(wh.read_bytes()[:12] + b"\0" * 9000)
    one_line_refusal(tdw("check", "--warehouse", str(damaged), data=data))
    ro = data / "data" / "ro"  # check on a read-only folder
    ro.mkdir()
    shutil.copy(wh, ro / "warehouse.duckdb")
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: a read-only folder is still writable")
        one_line_refusal(tdw("check", "--warehouse", str(ro / "warehouse.duckdb"), data=data))
    finally:
        ro.chmod(0o755)


@pytest.mark.slow  # whole ingests in child processes (each imports torch and Great Expectations)
def test_class6_bad_lake_jobs_are_recorded_not_fatal(suite, data):
    lake = data / "data" / "lake"
    assert tdw("ingest", str(suite), "--probes", "weights", "--lake", str(lake), data=data).returncode == 0
    jobs_ = sorted(lake.glob("weights/*/step=*/params=*"))
    (jobs_[0] / "_job.json").write_text("{broken")
    meta = json.loads((jobs_[1] / "_job.json").read_text())
    meta["model_id"] = "EleutherAI/pythia-14m"  # class 7: another model's name
    (jobs_[1] / "_job.json").write_text(json.dumps(meta))
    meta = json.loads((jobs_[2] / "_job.json").read_text())
    meta["run_id"] = "forged"
    (jobs_[2] / "_job.json").write_text(json.dumps(meta))
    table = next(jobs_[2].glob("*.parquet"))
    import pyarrow as pa
    import pyarrow.parquet as pq

    t = pq.read_table(table)
    pq.write_table(
        t.set_column(t.schema.get_field_index("step"), "step", pa.array([99] * len(t), t.schema.field("step").type)),
        table,
    )
    wh = data / "data" / "fresh.duckdb"
    out = tdw("load-lake", str(lake), "--warehouse", str(wh), data=data)
    assert out.returncode == 1 and "Traceback" not in out.stderr and "internal error" not in out.stderr
    assert "0 jobs loaded, 3 recorded as failed" in out.stdout
    rows = (
        duckdb.connect(str(wh), read_only=True)
        .execute(
            "select count(*) filter (status='success'), count(*) filter (model_id='EleutherAI/pythia-14m') "
            "from raw.ingest_runs"
        )
        .fetchone()
    )
    assert rows == (0, 0)
    assert duckdb.connect(str(wh), read_only=True).execute("select count(*) from raw.weight_stats").fetchone()[0] == 0


# ---------------------------------------------------------------- class 7: leftovers and trust
@pytest.mark.slow  # starts dbt and kills its parent
def test_class7_dbt_child_dies_with_its_parent(data):
    """A parent that starts the dbt child through ``run_dbt`` is killed with SIGKILL: the
    kernel (PR_SET_PDEATHSIG) must take the child along."""
    wh = data / "w.duckdb"
    duckdb.connect(str(wh)).close()
    code = (
        "import sys, warehouse.dbt as d, subprocess\n"
        "orig = subprocess.Popen\n"
        "def spy(*a, **k):\n    p = orig(*a, **k); print(p.pid, flush=True); return p\n"
        "d.subprocess.Popen = spy\n"
        "d.run_dbt(__import__('pathlib').Path(sys.argv[1]), 'debug')\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", code, str(wh)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        env=ENV,
    )
    child = int(parent.stdout.readline())
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
            if Path(f"/proc/{child}/status").read_text().find("State:\tZ") >= 0:
                break
        except (ProcessLookupError, FileNotFoundError):
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        pytest.fail("the dbt child outlived its killed parent")


def test_class7_stale_publish_temporaries_are_removed(data):
    from warehouse.snapshot import publish, snapshot_path

    wh = data / "warehouse.duckdb"
    con = duckdb.connect(str(wh))
    con.execute("create schema marts; create table marts.t as select 1 x")
    con.close()
    snap = snapshot_path(wh)
    stale = [
        snap.with_name(f".{snap.name}.999999999.deadbeef.tmp"),
        snap.with_name(f".{snap.name}.abcd1234.tmp"),
        snap.with_name(f".{snap.name}.999999999.deadbeef.tmp.wal"),
    ]
    for p in stale:
        p.write_bytes(b"x" * 1000)
    live = snap.with_name(f".{snap.name}.{os.getppid()}.cafe0000.tmp")  # a publish still running
    live.write_bytes(b"x")
    publish(wh)
    assert not any(p.exists() for p in stale) and live.exists()


def test_class7_unicode_digits_and_nan_timeout_are_refused(data):
    from ingest.revisions import step_of

    for text in ("step١٢", "step²", "step１"):
        with pytest.raises(TdwError):
            step_of(text)
    one_line_refusal(tdw("serve", "--timeout", "nan", "--port", "0", data=data, timeout=30))
    one_line_refusal(tdw("sql", "select 1", "--timeout", "nan", data=data))
    assert np.isnan(float("nan"))
