"""Seconds from a ``transformers.Trainer`` saving a checkpoint to its rows being in the
warehouse, with ``tdw watch`` polling the output directory.

A tiny GPT-NeoX (the live-ingest tests' model) trains on CPU with a checkpoint every
``--every`` steps; a sleep per step (``--step-seconds``) spaces the saves as a real run
would, so the watcher is not measured on a backlog. ``tdw watch`` runs as a subprocess
(``--interval`` polling, ``weights,training_log`` probes) and is started, and given time to
import, before training begins. Per checkpoint, the latency is the last job's commit time
(``raw.ingest_runs.ended_at``) minus the time ``on_save`` fired; the baseline, measured in
the same run, is the jobs' own time (the first job's start to the last job's commit), so
the ratio shows what polling and completeness detection add. Prints each checkpoint, the
medians over all checkpoints (the watcher pays its one-time imports before it says it is
watching) and the load average.

    python benchmarks/bench_watch.py [--steps 60] [--every 10] [--interval 0.5]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--every", type=int, default=10)
    ap.add_argument("--step-seconds", type=float, default=0.5)
    ap.add_argument("--interval", type=float, default=0.5)
    args = ap.parse_args()

    import duckdb
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM, Trainer, TrainerCallback, TrainingArguments

    from tests.faults.tinymodel import SMALL

    tmp = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    out, wh = tmp / "run", tmp / "warehouse.duckdb"
    out.mkdir()
    env = {**os.environ, "TDW_DATA_DIR": str(tmp), "OMP_NUM_THREADS": "1"}
    watcher = subprocess.Popen(
        [sys.executable, "-m", "tdw", "watch", str(out), "--probes", "weights,training_log", "--tensors", "embed"]
        + ["--warehouse", str(wh), "--interval", str(args.interval)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read():
        for line in watcher.stdout:
            lines.append(line.rstrip())
            ready.set()

    threading.Thread(target=read, daemon=True).start()
    ready.wait(120)
    time.sleep(3)  # let it finish starting

    saved: dict[int, datetime] = {}

    class Pace(TrainerCallback):
        def on_step_end(self, a, state, control, **kw):
            time.sleep(args.step_seconds)

        def on_save(self, a, state, control, **kw):
            saved[state.global_step] = datetime.now(UTC)

    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(GPTNeoXConfig(**SMALL))
    data = [{"input_ids": x, "labels": x} for x in torch.randint(0, 64, (32, 16))]
    targs = TrainingArguments(
        output_dir=str(out),
        max_steps=args.steps,
        save_steps=args.every,
        logging_steps=5,
        per_device_train_batch_size=8,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    Trainer(model=model, args=targs, train_dataset=data, callbacks=[Pace()]).train()
    last = max(saved)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not any(f"checkpoint-{last}: 2 jobs" in ln for ln in lines):
        time.sleep(0.2)
    watcher.send_signal(signal.SIGINT)
    watcher.wait(120)

    con = duckdb.connect(str(wh), read_only=True)
    rows = con.execute(
        "SELECT step, min(started_at), max(ended_at) FROM raw.ingest_runs WHERE status='success' GROUP BY step"
    ).fetchall()
    con.close()
    latency, jobs = {}, {}
    for step, start, end in sorted(rows):
        latency[step] = (end - saved[step]).total_seconds()
        jobs[step] = (end - start).total_seconds()
        print(f"checkpoint-{step}: {latency[step]:.2f} s from save to rows (jobs {jobs[step]:.2f} s)")
    med_l = statistics.median(latency.values())
    med_j = statistics.median(jobs.values())
    print(f"first checkpoint: {latency[min(latency)]:.2f} s (the watcher imports its probes before it)")
    print(
        f"median over {len(latency)} checkpoints: {med_l:.2f} s from save to rows; "
        f"baseline (the jobs alone) {med_j:.2f} s; ratio {med_l / med_j:.1f}x; poll interval {args.interval:g} s"
    )
    print(f"load average: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
