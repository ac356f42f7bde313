"""Mean squared displacement (METHODS §B, eqs. 4-5) for the dbt Python models int_msd and
int_msd_time_demeaned: numpy over one (model, tensor) series at a time.

MSD(tau) = 1/(N-1) sum_k (S_tau,k - mean_k S_tau,k)^2 with S_tau,k = sum_{t <= tau} w_t,k, the
sample variance over the sampled indices k of the running sums. As SQL (unnest every sample,
a window sum per index, a variance per step) it sorted T x N rows: superlinear in the
checkpoints and minutes for one Pythia-14M-shaped model. Here a series is a [T, N] array:
``cumsum`` over the steps and a variance per row, linear in T x N.

Streaming (int_msd): the running sum of a series' last checkpoint is stored on its last row
(``running_sum``; NULL on every other row), so the build after one more checkpoint reads
that carry and the new samples only: O(N) per new checkpoint, whatever T is. Rows carry the
prefix fingerprint of their checkpoint (int_checkpoint_versions: the run ids of this and every
earlier checkpoint); a (re-)ingest in the middle of a series changes the fingerprint of every
later row, those rows are deleted with the carry, and the series restarts from its first
checkpoint. A build killed part-way leaves dbt's transaction unapplied.

The time-demeaned variant subtracts each index's mean over every ingested checkpoint: each
new checkpoint moves that mean and so every row of the series, so int_msd_time_demeaned is a
whole-series model: it recomputes (O(T x N)) the models whose weights series changed.

Indices missing at some checkpoints (a shorter sample) behave as the SQL window did: a
running sum adds the checkpoints where its index is present, and a step's variance is over
the indices present at that step. Pure functions of arrays and a DuckDB connection.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

SERIES = ["model_id", "tensor_name"]
COLUMNS = ["model_id", "tensor_name", "step", "msd", "n_sampled", "n_total", "is_exact", "source_version"]
BATCH_ROWS = 16


def stack(samples: pa.ChunkedArray, width: int = 0) -> np.ndarray:
    """[T, N] float64 of T samples (a list column); NaN where a sample is shorter than the
    longest (or than ``width``)."""
    arr = samples.combine_chunks()
    offsets = arr.offsets.to_numpy()
    flat = arr.flatten().to_numpy(zero_copy_only=False)
    lengths = np.diff(offsets)
    n = int(max(width, lengths.max(initial=0)))
    if len(lengths) and (lengths == n).all():
        return flat.astype(np.float64).reshape(len(lengths), n)
    out = np.full((len(lengths), n), np.nan)
    for i, (a, b) in enumerate(zip(offsets[:-1], offsets[1:])):
        out[i, : b - a] = flat[a - offsets[0] : b - offsets[0]]
    return out


def _row_var(x: np.ndarray, present: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Sample variance (ddof 1) and count of each row of ``x`` over its present entries."""
    if present is None:
        n = np.full(len(x), x.shape[1])
        return (x.var(axis=1, ddof=1) if x.shape[1] > 1 else np.full(len(x), np.nan)), n
    n = present.sum(axis=1)
    mean = np.where(present, x, 0.0).sum(axis=1) / np.maximum(n, 1)
    dev = np.where(present, x - mean[:, None], 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.where(n > 1, (dev * dev).sum(axis=1) / (n - 1), np.nan)
    return var, n


def msd_series(w: np.ndarray, carry: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MSD of each row of ``w`` ([T, N], NaN = index absent at that step) continuing from the
    running sums ``carry`` ([<= N], zeros where an index never occurred): (msd [T], n_sampled [T],
    the last running sums [N])."""
    present = None if not np.isnan(w).any() else ~np.isnan(w)
    cum = np.nan_to_num(w, nan=0.0) if present is not None else w.copy()
    if carry is not None:
        cum[0, : len(carry)] += carry
    np.cumsum(cum, axis=0, out=cum)
    msd, n = _row_var(cum, present)
    return msd, n, cum[-1].copy()


def msd_time_demeaned(w: np.ndarray) -> np.ndarray:
    """MSD of the cumulative sums of w_t,k minus index k's mean over the series' steps."""
    present = None if not np.isnan(w).any() else ~np.isnan(w)
    mean = np.nanmean(w, axis=0) if present is not None else w.mean(axis=0)
    d = np.where(present, w - mean, 0.0) if present is not None else w - mean
    np.cumsum(d, axis=0, out=d)
    return _row_var(d, present)[0]


def _series(con, query: str) -> Iterator[tuple[tuple[str, str], pa.Table]]:
    """(model_id, tensor_name) and its rows, from a query ordered by model, tensor and step;
    one series in memory at a time."""
    key, parts = None, []
    for batch in con.sql(query).to_arrow_reader(BATCH_ROWS):
        t = pa.Table.from_batches([batch])
        models, tensors = t["model_id"].to_pylist(), t["tensor_name"].to_pylist()
        start = 0
        for i in range(1, len(t) + 1):
            if i == len(t) or (models[i], tensors[i]) != (models[start], tensors[start]):
                k = (models[start], tensors[start])
                if k != key and parts:
                    yield key, pa.concat_tables(parts)
                    parts = []
                key = k
                parts.append(t.slice(start, i - start))
                start = i
    if parts:
        yield key, pa.concat_tables(parts)


def _table(rows: dict[str, list]) -> pa.Table:
    types = {
        "model_id": pa.string(),
        "tensor_name": pa.string(),
        "step": pa.int64(),
        "msd": pa.float64(),
        "n_sampled": pa.int64(),
        "n_total": pa.int64(),
        "is_exact": pa.bool_(),
        "source_version": pa.string(),
        "msd_time_demeaned": pa.float64(),
        "running_sum": pa.list_(pa.float64()),
    }
    names = [c for c in rows if c in types]
    return pa.table({c: pa.array(rows[c], type=types[c], from_pandas=True) for c in names})


def _columns(con, relation: str) -> set[str]:
    return {c.lower() for c in con.sql(f"select * from {relation} limit 0").columns}


def streaming_msd(con, samples, versions, this: str | None) -> pa.Table:
    """The rows of int_msd to insert: every series on a full build (``this`` None); else the
    checkpoints after each series' stored carry, after deleting the stale rows from ``this``."""
    src, ver = samples.sql_query(), versions.sql_query()
    current = f"select model_id, step, prefix_version as source_version from ({ver}) where probe = 'weights'"
    if this is not None and not {"source_version", "running_sum"} <= _columns(con, this):
        con.execute(f"delete from {this}").fetchall()  # built before int_msd streamed: start again
    carry: dict[tuple[str, str], tuple[int, np.ndarray]] = {}
    where = ""
    if this is not None:
        con.execute(f"""delete from {this} as t where not exists (select 1 from ({current}) as v
            where v.model_id = t.model_id and v.step = t.step and v.source_version = t.source_version)""").fetchall()
        con.execute(f"""delete from {this} as t where not exists (select 1 from {this} as c where c.model_id =
            t.model_id and c.tensor_name = t.tensor_name and c.running_sum is not null)""").fetchall()
        for m, tn, step, s in con.execute(
            f"select model_id, tensor_name, step, running_sum from {this} where running_sum is not null"
        ).fetchall():
            carry[(m, tn)] = (step, np.asarray(s, dtype=np.float64))
        done = con.execute(
            f"select model_id, min(step) from {this} where running_sum is not null group by model_id"
        ).fetchall()
        # a model with a carry only gains checkpoints after its carried steps (an earlier one
        # would have changed every later fingerprint and removed the carry)
        where = " and ".join(
            f"not (s.model_id = '{m.replace(chr(39), chr(39) * 2)}' and s.step <= {s})" for m, s in done
        )
    query = f"""select s.model_id, s.tensor_name, s.step, s.n_total, s.is_exact, s.sampled_values, v.source_version
        from ({src}) as s inner join ({current}) as v using (model_id, step)
        {"where " + where if where else ""} order by s.model_id, s.tensor_name, s.step"""
    rows: dict[str, list] = {c: [] for c in [*COLUMNS, "running_sum"]}
    moved: list[tuple[str, str, int]] = []
    for key, t in _series(con, query):
        step0, s0 = carry.pop(key, (None, None))
        if step0 is not None:
            t = t.filter(pc.greater(t["step"], step0))
        if not t.num_rows:
            continue
        w = stack(t["sampled_values"], 0 if s0 is None else len(s0))
        msd, n, last = msd_series(w, s0)
        _append(rows, t, key, msd=msd.tolist(), n_sampled=n.tolist())
        rows["running_sum"].extend([None] * (t.num_rows - 1) + [last])
        if step0 is not None:  # the carry moves to the series' new last row
            moved.append((*key, step0))
    if moved:
        con.executemany(
            f"update {this} set running_sum = null where model_id = ? and tensor_name = ? and step = ?", moved
        )
    return _table(rows)


def _append(rows: dict[str, list], t: pa.Table, key: tuple[str, str], **values: list) -> None:
    rows["model_id"].extend([key[0]] * t.num_rows)
    rows["tensor_name"].extend([key[1]] * t.num_rows)
    for c in ("step", "n_total", "is_exact", "source_version"):
        if c in rows:
            rows[c].extend(t[c].to_pylist())
    for c, v in values.items():
        rows[c].extend(v)


def time_demeaned_msd(con, samples, versions, this: str | None) -> pa.Table:
    """The rows of int_msd_time_demeaned to insert: the whole series of every model whose
    weights series fingerprint ``this`` does not hold (its stored rows deleted first)."""
    src, ver = samples.sql_query(), versions.sql_query()
    current = f"select distinct model_id, series_version as source_version from ({ver}) where probe = 'weights'"
    todo = current
    if this is not None:
        con.execute(f"""delete from {this} as t where not exists (select 1 from ({current}) as v
            where v.model_id = t.model_id and v.source_version = t.source_version)""").fetchall()
        todo = (
            f"select * from ({current}) as v where not exists (select 1 from {this} as t where t.model_id = v.model_id)"
        )
    query = f"""select s.model_id, s.tensor_name, s.step, s.sampled_values, v.source_version
        from ({src}) as s inner join ({todo}) as v using (model_id) order by s.model_id, s.tensor_name, s.step"""
    rows: dict[str, list] = {c: [] for c in ["model_id", "tensor_name", "step", "source_version", "msd_time_demeaned"]}
    for key, t in _series(con, query):
        _append(rows, t, key, msd_time_demeaned=msd_time_demeaned(stack(t["sampled_values"])).tolist())
    return _table(rows)
