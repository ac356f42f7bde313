"""The adversarial fault suite (issue 12, point 5): Hypothesis mutates what a hostile user
controls — safetensors headers, ``config.json``, shard index files, ``--param`` values —
and checks one invariant for every generated case:

    a clean refusal (a one-line TdwError before anything is written) or a recorded failed
    job (one-line reason in raw.ingest_runs), the rest of the batch loaded, the warehouse
    otherwise unchanged (every raw table compared before and after), and no hang (each
    case runs under an alarm).

Header verdicts are also compared with an independent reference, the safetensors library:
our validator accepts a mutated file exactly when the library reads every tensor of it.
Calls are in-process (the pipeline, not one ``tdw`` process per case) to keep the suite to
about a minute; the number of cases run is printed at the end (``-s``) and written to
``$TDW_PROPERTY_CASES`` when set.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.errors import TdwError
from ingest.probes import PROBES
from tests.faults.tinymodel import header, make_suite, raw_tables
from warehouse.params import check_params
from warehouse.pipeline import ingest

CASES: Counter = Counter()
OUTCOMES: Counter = Counter()  # of the ingest cases: refusal, failed job, harmless
CASE_TIMEOUT = 30
SETTINGS = dict(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@contextmanager
def no_hang(seconds: int = CASE_TIMEOUT):
    def fire(*_):
        raise TimeoutError(f"a case ran longer than {seconds} s")

    old = signal.signal(signal.SIGALRM, fire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


@pytest.fixture(scope="module", autouse=True)
def report_cases():
    yield
    total = sum(CASES.values())
    print(f"\nproperty-based fault cases run: {total} ({dict(CASES)}); ingest outcomes: {dict(OUTCOMES)}")
    if os.environ.get("TDW_PROPERTY_CASES"):
        Path(os.environ["TDW_PROPERTY_CASES"]).write_text(
            json.dumps({"total": total, "cases": CASES, "ingest_outcomes": OUTCOMES})
        )


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny real suite and a warehouse holding its weights jobs."""
    root = tmp_path_factory.mktemp("prop")
    suite = make_suite(root / "model")
    wh = root / "base.duckdb"
    r = ingest(str(suite), probes="weights", warehouse=wh, progress=False)
    assert r.ok and len(r.done) == 3
    return suite, wh


# ------------------------------------------------------------------------ mutations
JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)),
    max_leaves=6,
)

HEADER_OPS = st.sampled_from(
    [
        "offsets",
        "offset_value",
        "shape",
        "dtype",
        "drop_key",
        "extra_field",
        "duplicate",
        "metadata",
        "length",
        "truncate",
        "append",
        "garbage",
        "swap",
    ]
)


@st.composite
def header_mutation(draw):
    return (
        draw(HEADER_OPS),
        draw(st.integers(0, 10**6)),
        draw(JSON_VALUES),
        draw(st.integers(-64, 64)),
        draw(st.sampled_from(["F32", "F16", "BF16", "I64", "U8", "F64", "X9", "", "f32"])),
    )


def mutate_header(path: Path, mutation) -> None:
    op, pick, value, delta, dtype = mutation
    head, blob = header(path)
    names = [k for k in head if k != "__metadata__"]
    a = names[pick % len(names)]
    b = names[(pick // 7 + 1) % len(names)]
    text = None
    if op == "offsets":
        head[a]["data_offsets"] = value
    elif op == "offset_value":
        head[a]["data_offsets"][pick % 2] += delta
    elif op == "shape":
        head[a]["shape"] = value if pick % 2 else [max(0, d + delta) for d in head[a]["shape"]]
    elif op == "dtype":
        head[a]["dtype"] = dtype
    elif op == "drop_key":
        del head[a][["dtype", "shape", "data_offsets"][pick % 3]]
    elif op == "extra_field":
        head[a]["x"] = value
    elif op == "duplicate":
        text = json.dumps(head)[:-1] + f", {json.dumps(a)}: {json.dumps(head[b])}}}"
    elif op == "metadata":
        head["__metadata__"] = value
    elif op == "swap":
        head[a]["data_offsets"], head[b]["data_offsets"] = head[b]["data_offsets"], head[a]["data_offsets"]
    raw = (text or json.dumps(head)).encode()
    data = len(raw).to_bytes(8, "little") + raw + blob
    if op == "length":
        data = (len(raw) + delta).to_bytes(8, "little", signed=True) + data[8:]
    elif op == "truncate":
        data = data[: max(0, len(data) - 1 - pick % 2000)]
    elif op == "append":
        data = data + b"\0" * (1 + pick % 64)
    elif op == "garbage":
        cut = 8 + pick % len(raw)
        data = data[:cut] + bytes([(delta + 256) % 256]) + data[cut + 1 :]
    path.write_bytes(data)


CONFIG_KEYS = st.sampled_from(
    [
        "model_type",
        "architectures",
        "num_hidden_layers",
        "hidden_size",
        "vocab_size",
        "num_attention_heads",
        "intermediate_size",
        "max_position_embeddings",
        "tie_word_embeddings",
        "rotary_pct",
        "torch_dtype",
    ]
)


@st.composite
def config_mutation(draw):
    kind = draw(st.sampled_from(["set", "delete", "replace"]))
    return (
        kind,
        draw(CONFIG_KEYS),
        draw(
            st.one_of(
                JSON_VALUES, st.sampled_from([10**9, 0, -1, 1e30, "llama", "gpt2", ["LlamaForCausalLM"], 1.5, 10**20])
            )
        ),
        draw(st.binary(max_size=40)),
    )


def mutate_config(path: Path, mutation) -> None:
    kind, key, value, junk = mutation
    cfg = json.loads(path.read_text())
    if kind == "set":
        cfg[key] = value
    elif kind == "delete":
        cfg.pop(key, None)
    if kind == "replace":
        path.write_bytes(junk)
    else:
        path.write_text(json.dumps(cfg))


SHARD_NAMES = st.one_of(
    st.sampled_from(
        [
            "model.safetensors",
            "../model.safetensors",
            "/dev/zero",
            "missing.safetensors",
            "shard.safetensors",
            "",
            ".",
            "..",
            "model.bin",
        ]
    ),
    st.text(max_size=20),
)


@st.composite
def index_mutation(draw):
    return draw(st.sampled_from(["map", "not_a_map", "empty", "junk"])), draw(SHARD_NAMES), draw(JSON_VALUES)


def mutate_index(folder: Path, mutation) -> None:
    kind, shard, value = mutation
    head, _ = header(folder / "model.safetensors")
    (folder / "model.safetensors").rename(folder / "shard.safetensors")
    index = folder / "model.safetensors.index.json"
    names = [k for k in head if k != "__metadata__"]
    if kind == "map":
        index.write_text(
            json.dumps({"weight_map": {n: (shard if i == 0 else "shard.safetensors") for i, n in enumerate(names)}})
        )
    elif kind == "not_a_map":
        index.write_text(json.dumps({"weight_map": value}))
    elif kind == "empty":
        index.write_text(json.dumps(value))
    else:
        index.write_bytes(b'{"weight_map": {' + shard.encode()[:10])


# ------------------------------------------------------------------------ the invariant
def check_batch(base, tmp_path: Path, mutate) -> None:
    """Ingest the suite with step 1 mutated; the invariant of the module docstring."""
    suite, base_wh = base
    case = tmp_path / f"case{sum(CASES.values())}"
    src = case / "model"
    shutil.copytree(suite, src)
    wh = case / "w.duckdb"
    shutil.copy(base_wh, wh)
    before = raw_tables(wh)
    mutate(src / "step1")
    try:
        with no_hang():
            result = ingest(str(src), probes="weights", warehouse=wh, progress=False)
    except TdwError as e:  # a clean refusal: nothing changed
        assert "\n" not in str(e)
        assert raw_tables(wh) == before
        OUTCOMES["clean refusal"] += 1
        return
    after = raw_tables(wh)
    failed = [s for s, _, _ in result.failed]
    assert set(failed) <= {1} and all("\n" not in err for _, _, err in result.failed)
    assert {s for s, _ in result.skipped} >= {0, 2}  # the rest of the batch: already there
    new_runs = [r for r in after["ingest_runs"] if r not in before["ingest_runs"]]
    OUTCOMES["recorded failed job" if failed else "harmless (valid file)"] += 1
    if failed:  # a recorded failed job; data untouched
        assert len(new_runs) == 1 and "'failed'" in new_runs[0] and "'weights'" in new_runs[0]
        assert {k: v for k, v in after.items() if k != "ingest_runs"} == {
            k: v for k, v in before.items() if k != "ingest_runs"
        }
    else:  # a harmless mutation: step 1 reloaded
        assert result.done == [(1, "weights")] or result.skipped == [(0, "weights"), (1, "weights"), (2, "weights")]
    shutil.rmtree(case, ignore_errors=True)


@settings(max_examples=300, **SETTINGS)
@given(mutation=header_mutation())
def test_header_verdict_matches_the_safetensors_library(base, tmp_path, mutation):
    """Our validator refuses a mutated header exactly when the safetensors library cannot read it."""
    from safetensors import safe_open

    from ingest.tensors import _check_safetensors

    CASES["header verdicts vs safetensors"] += 1
    path = tmp_path / f"h{CASES['header verdicts vs safetensors']}.safetensors"
    shutil.copy(base[0] / "step1" / "model.safetensors", path)
    mutate_header(path, mutation)
    try:
        with safe_open(str(path), "np") as f:
            for k in f.keys():  # noqa: SIM118 (safe_open is no mapping)
                f.get_tensor(k)
        reference_ok = True
    except Exception:
        reference_ok = False
    try:
        with no_hang():
            _check_safetensors(path)
        ours_ok = True
    except TdwError as e:
        assert "\n" not in str(e)
        ours_ok = False
    assert ours_ok == reference_ok, (mutation, ours_ok, reference_ok)
    path.unlink()


@pytest.mark.slow  # generated examples, each a whole ingest
@settings(max_examples=25, **SETTINGS)
@given(mutation=header_mutation())
def test_mutated_header_is_a_failed_job_or_a_refusal(base, tmp_path, mutation):
    CASES["ingest: mutated header"] += 1
    check_batch(base, tmp_path, lambda folder: mutate_header(folder / "model.safetensors", mutation))


@pytest.mark.slow  # generated examples, each a whole ingest
@settings(max_examples=25, **SETTINGS)
@given(mutation=config_mutation())
def test_mutated_config_is_a_failed_job_or_a_refusal(base, tmp_path, mutation):
    CASES["ingest: mutated config.json"] += 1
    check_batch(base, tmp_path, lambda folder: mutate_config(folder / "config.json", mutation))


@pytest.mark.slow  # generated examples, each a whole ingest
@settings(max_examples=20, **SETTINGS)
@given(mutation=index_mutation())
def test_mutated_index_is_a_failed_job_or_a_refusal(base, tmp_path, mutation):
    CASES["ingest: mutated shard index"] += 1
    check_batch(base, tmp_path, lambda folder: mutate_index(folder, mutation))


PARAM_NAMES = st.sampled_from(
    sorted(
        {f"{p}.{n}" for p, c in PROBES.items() for n in c.defaults}
        | {"weight.msd_sample", "weights.bogus", "graf.n_prompts"}
    )
)
PARAM_TEXT = st.one_of(
    st.sampled_from(
        [
            "0",
            "-5",
            "nan",
            "inf",
            "-inf",
            "abc",
            "1e12",
            "1e30",
            "",
            "auto",
            "true",
            "99999999999999999999",
            "١٢",
            "0.5",
            "1",
            "16",
        ]
    ),
    st.integers(-(2**70), 2**70).map(str),
    st.floats().map(str),
    st.text(max_size=8),
)


@settings(max_examples=300, **SETTINGS)
@given(name=PARAM_NAMES, value=PARAM_TEXT)
def test_param_values_are_refused_or_typed_within_range(name, value):
    """Every ``--param`` text is either refused in one line or becomes a value of its
    default's type, finite and inside its documented range."""
    import math

    from tdw.options import parse_params
    from warehouse.params import MAX_COUNT, MAX_SEED, UPPER

    CASES["--param values"] += 1
    try:
        checked = check_params(parse_params((f"{name}={value}",), None), PROBES)
    except TdwError as e:
        assert "\n" not in str(e)
        return
    probe, key = name.split(".")
    v, default = checked[probe][key], PROBES[probe].defaults[key]
    if isinstance(default, bool):
        assert isinstance(v, bool)
    elif isinstance(default, int):
        assert v == "auto" or (type(v) is int and 0 <= v <= (MAX_SEED if "seed" in key else UPPER.get(key, MAX_COUNT)))
        if type(v) is int and default > 0 and "seed" not in key and "threads" not in key:
            assert v >= 1
    elif isinstance(default, float):
        assert type(v) is float and math.isfinite(v) and v >= 0
    else:
        assert isinstance(v, str)
