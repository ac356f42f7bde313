"""Benchmark: the batched nnsight component graph against the naive hooked loop.

Model: Pythia-14M's shape (GPT-NeoX, 6 layers, d_model 128, 4 heads, vocab 50304,
parallel residual) with seeded random weights; one checkpoint's graph on the induction
task, 16 prompts x 64 tokens, zero ablation.

- naive (``ingest.probes.graph.reference``, as public scripts do it): per node a fresh
  clean and an ablated full forward with hooks, full logits at every position; measures
  in float32 at the measured positions;
- ours (``ingest.probes.graph.ablate.component_graph``): one clean trace, one batched
  trace per layer that skips the layers upstream of the ablated nodes, the unembedding
  only at the measured positions.

Two comparisons, each on the same weights in the same run: the component edges (every
edge not into ``logits``; ours with ``logits=False``), and the full graph. The results
are checked equal (max abs difference per measure). Each method runs in its own spawned
process so its peak resident memory (``ru_maxrss``) is its own; the figure printed is the
peak minus the process's resident size right after the model was built.

Both wall-clock and CPU seconds are reported: on a shared machine wall time includes
waiting for a core, CPU time does not. Torch runs one thread per process by default
(``--threads``): on an oversubscribed machine multi-threaded small kernels mostly wait
for each other, which distorts the comparison; pass ``--threads 2`` on an idle machine.

    python benchmarks/bench_graph.py [--repeats 3] [--naive-repeats 1] [--threads 1]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import statistics
import time

from _common import load_average, pythia14m_shaped

N_PROMPTS, SEQ_LEN, SEED = 16, 64, 0


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def _worker(method: str, logits: bool, repeats: int, threads: int, queue) -> None:
    import torch

    from ingest.probes.graph.ablate import component_graph
    from ingest.probes.graph.adapters import adapter_for
    from ingest.probes.graph.reference import reference_graph
    from ingest.probes.graph.tasks import induction_prompts

    if threads:
        torch.set_num_threads(threads)
    model = pythia14m_shaped(SEED, hidden_dropout=0.0, attention_dropout=0.0, bos_token_id=0, eos_token_id=0)
    ad = adapter_for(model.config)
    batch = induction_prompts(N_PROMPTS, SEQ_LEN, SEED, 50304).batch()
    base = _rss_mb()
    times, cpu, result = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        if method == "ours":
            g = component_graph(model, ad, batch, "zero", logits=logits)
            result = {(u, v): {m: g.values[m][i] for m in g.values} for i, (u, v) in enumerate(zip(g.src, g.dst))}
        else:
            ref = reference_graph(
                model,
                batch,
                "zero",
                recompute_clean=True,
                logits=logits,
                dtype=torch.float32,
            )
            allowed = set(ad.graph_edges())
            result = {e: r for e, r in ref.items() if e in allowed}
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {e: {m: v.numpy() for m, v in r.items()} for e, r in result.items()}  # picklable
    queue.put({"times": times, "cpu": cpu, "peak_mb": peak - base, "result": result})


def run(method: str, logits: bool, repeats: int, threads: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    p = ctx.Process(target=_worker, args=(method, logits, repeats, threads, queue))
    p.start()
    out = queue.get()
    p.join()
    return out


def max_diff(a: dict, b: dict) -> dict[str, float]:
    import numpy as np

    assert set(a) == set(b), "the two methods produced different edge sets"
    worst: dict[str, float] = {}
    for e in a:
        for m, v in a[e].items():
            if np.isnan(b[e][m]).all() and np.isnan(v).all():
                continue
            worst[m] = max(worst.get(m, 0.0), float(np.abs(v - b[e][m]).max()))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3, help="timed runs of ours (median)")
    ap.add_argument("--naive-repeats", type=int, default=1, help="timed runs of the naive loop")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process (0: torch's default)")
    args = ap.parse_args()
    print(
        f"Pythia-14M shape (6 layers, d_model 128, 4 heads, vocab 50304), {N_PROMPTS} prompts x "
        f"{SEQ_LEN} tokens, zero ablation; ours x{args.repeats}, naive x{args.naive_repeats}, "
        f"threads {args.threads or 'default'}"
    )
    rows = []
    for label, logits in (("component edges", False), ("full graph", True)):
        naive = run("naive", logits, args.naive_repeats, args.threads)
        ours = run("ours", logits, args.repeats, args.threads)
        med = {k: (statistics.median(naive[k]), statistics.median(ours[k])) for k in ("times", "cpu")}
        diff = max_diff(ours["result"], naive["result"])
        rows.append((label, med, naive["peak_mb"], ours["peak_mb"], len(ours["result"]), diff))
        print(f"  {label}: naive {med['times'][0]:.2f} s, ours {med['times'][1]:.3f} s", flush=True)
    for label, med, pn, po, n_edges, diff in rows:
        (wn, wo), (cn, co) = med["times"], med["cpu"]
        print(f"\n{label} ({n_edges} edges)")
        print(f"  naive: {wn:8.3f} s/checkpoint wall, {cn:8.3f} s CPU   peak +{pn:7.1f} MiB")
        print(f"  ours:  {wo:8.3f} s/checkpoint wall, {co:8.3f} s CPU   peak +{po:7.1f} MiB")
        print(
            f"  speed-up: {wn / wo:6.1f}x wall, {cn / co:6.1f}x CPU   max |ours - naive|: "
            + ", ".join(f"{m} {d:.1e}" for m, d in sorted(diff.items()))
        )
    print(load_average())


if __name__ == "__main__":
    main()
