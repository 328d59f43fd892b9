"""Dedup: signature speed against datatrove and datasketch, then the whole dedup at two sizes.

1. Signatures, same documents, one process: our `DedupSignatures` step (which also writes the
   documents' parquet, digests and shingle sets), datatrove's `MinhashDedupSignature` step with
   the same number of hashes (8 bands x 16 = 128, its `num_buckets`; it also sorts its band files), and one datasketch
   `MinHash` per document (`update_batch` on the UTF-8 shingles, its default SHA-1 hash).
   Documents per second and our ratio to each. Target: at least 2x datatrove.
2. The whole dedup (signatures in 4 tasks, then every pass `dedup_passes` makes: bands,
   verify, the components rounds, clusters) on 1,000,000 and 10,000,000 documents of 50 to 150
   words with planted exact copies (5%) and near copies (10%, one word changed; Jaccard about
   0.9), generated as a stream. Each task runs in its own process, two at a time (this machine's
   cores); per pass: its tasks, wall time, the tasks' seconds added up (core-seconds), and the
   slowest task's seconds and largest task's peak RSS. The passes after the bands have one task per partition, as many as the corpus needs under
   the memory bound (`--memory-mb`), so their tasks' cost stays flat as the corpus grows; they
   must stay under the bound at both sizes.

    .venv/bin/python bench/dedup.py [--signature-documents 20000] [--sizes 1000000 10000000] [--memory-mb 512]
"""

import argparse
import os
import pickle
import random
import subprocess
import sys
import tempfile
import time

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from datatrove.data import Document  # noqa: E402
from datatrove.io import get_datafolder  # noqa: E402

from core.text import words  # noqa: E402
from dedup import DedupLayout, DedupSignatures, dedup_passes, lsh_params  # noqa: E402
from tooling.sample import sample_sentences  # noqa: E402

NUM_PERM, THRESHOLD, RECALL, TASKS = 128, 0.8, 0.95, 4
BANDS, ROWS = lsh_params(THRESHOLD, NUM_PERM, RECALL)
LAYOUT = DedupLayout()
PARALLEL = 2


def documents(count: int, seed: int = 0, words_per_document: tuple[int, int] = (20, 60)):
    """`count` one-line documents, as a stream: 5% exact copies and 10% near copies (one word
    changed) of one of the last 10,000 originals."""
    rng = random.Random(seed)
    vocabulary = sorted({w.lower() for s in sample_sentences("en") for w in words(s, "en")})
    recent: list[str] = []
    for _ in range(count):
        roll = rng.random()
        if recent and roll < 0.05:
            yield rng.choice(recent)
        elif recent and roll < 0.15:
            doc = rng.choice(recent).split(" ")
            doc[rng.randrange(len(doc))] = rng.choice(vocabulary)
            yield " ".join(doc)
        else:
            text = " ".join(rng.choices(vocabulary, k=rng.randint(*words_per_document)))
            recent.append(text)
            if len(recent) > 10_000:
                recent.pop(rng.randrange(len(recent)))
            yield text


def _docs(texts: list[str]):
    return (Document(text=t, id=str(i), metadata={}) for i, t in enumerate(texts))


def signature_speed(count: int) -> None:
    from datasketch import MinHash
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

    texts = list(documents(count, seed=1))
    with tempfile.TemporaryDirectory() as tmp:
        ours_step = DedupSignatures(get_datafolder(f"{tmp}/ours"), LAYOUT, "en", NUM_PERM, 1, 5)
        theirs_step = MinhashDedupSignature(f"{tmp}/datatrove", config=MinhashConfig(num_buckets=8, hashes_per_bucket=16))

        def ours():
            list(ours_step.run(_docs(texts)))

        def datatrove():
            theirs_step.run(_docs(texts))  # not a generator: it writes its files and returns

        def datasketch():
            for text in texts:
                tokens = text.lower().split()
                shingles = {" ".join(tokens[i : i + 5]).encode() for i in range(max(1, len(tokens) - 4))}
                MinHash(num_perm=NUM_PERM, seed=1).update_batch(shingles)

        rates = {}
        for name, run in (("ours", ours), ("datatrove MinhashDedupSignature", datatrove), ("datasketch per document", datasketch)):
            start = time.perf_counter()
            run()
            rates[name] = count / (time.perf_counter() - start)
    print(f"signatures, {count:,} documents, {NUM_PERM} hashes:")
    for name, rate in rates.items():
        print(f"  {name:<34} {rate:>10,.0f} docs/s")
    for name in list(rates)[1:]:
        print(f"  ours / {name:<27} {rates['ours'] / rates[name]:>10.2f}")


def run_task(stage: str, folder: str, rank: int) -> None:
    """One task, in this process (started by `_pass`): a signatures task reads its input file,
    any other runs the step pickled in `stage`."""
    data = get_datafolder(folder)
    if stage == "signatures":
        with open(os.path.join(folder, f"input-{rank}.txt"), encoding="utf-8") as f:
            docs = (Document(text=line.rstrip("\n"), id=f"{rank}-{i}", metadata={}) for i, line in enumerate(f))
            list(DedupSignatures(data, LAYOUT, "en", NUM_PERM, 1, 5).run(docs, rank=rank))
    else:
        with open(stage, "rb") as f:
            steps = pickle.load(f)
        for step in steps:
            list(step.run(None, rank=rank))
    # This process's own peak (ru_maxrss of a child would include its parent's at the fork).
    with open("/proc/self/status") as f:
        print(next(line.split()[1] for line in f if line.startswith("VmHWM:")))


def _pass(stage: str, folder: str, tasks: int) -> dict:
    """Runs a pass's tasks, each in its own process, PARALLEL at a time: its tasks, seconds, the
    tasks' seconds added up, the slowest task's seconds and the largest peak RSS (MiB)."""
    start, slowest, busy, peak, running = time.perf_counter(), 0.0, 0.0, 0.0, []

    def finish(process, started):
        nonlocal slowest, busy, peak
        out, err = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"{stage} task failed: {err[-2000:]}")
        seconds = time.perf_counter() - started
        slowest, busy, peak = max(slowest, seconds), busy + seconds, max(peak, int(out.split()[-1]) / 1024)

    for rank in range(tasks):
        if len(running) == PARALLEL:
            finish(*running.pop(0))
        command = [sys.executable, __file__, "--task", stage, folder, str(rank)]
        running.append((subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), time.perf_counter()))
    for process, started in running:
        finish(process, started)
    return {"tasks": tasks, "seconds": time.perf_counter() - start, "task_seconds": busy, "slowest": slowest, "peak": peak}


def whole_dedup(count: int, memory_mb: int, folder: str) -> dict:
    files = [open(os.path.join(folder, f"input-{rank}.txt"), "w", encoding="utf-8") for rank in range(TASKS)]
    for i, text in enumerate(documents(count, seed=2, words_per_document=(50, 150))):
        files[i % TASKS].write(text + "\n")
    for f in files:
        f.close()
    results = {"signatures": _pass("signatures", folder, TASKS)}
    settings = {"threshold": THRESHOLD, "num_perm": NUM_PERM, "ngram": 5, "seed": 1, "memory_mb": memory_mb, "recall": RECALL,
                "verify": "shingles", "bands": BANDS, "rows": ROWS}
    for name, steps, tasks in dedup_passes(get_datafolder(folder), LAYOUT, TASKS, settings):
        path = os.path.join(folder, "steps.pickle")
        with open(path, "wb") as f:
            pickle.dump(steps, f)
        results[name] = _pass(path, folder, tasks)
    table = pq.read_table(os.path.join(folder, LAYOUT.clusters), columns=["kept"])
    removed = table.num_rows - pc.sum(table.column("kept")).as_py()
    print(f"whole dedup, {count:,} documents ({removed:,} removed as duplicates), memory bound {memory_mb} MiB, "
          f"{PARALLEL} tasks at a time:")
    print(f"  {'pass':<28} {'tasks':>5} {'wall s':>8} {'task s':>8} {'slowest task s':>15} {'largest task RSS MiB':>21}")
    for name, r in results.items():
        print(f"  {name:<28} {r['tasks']:>5} {r['seconds']:>8.1f} {r['task_seconds']:>8.1f} {r['slowest']:>15.1f} {r['peak']:>21.0f}")
    wall, busy = sum(r["seconds"] for r in results.values()), sum(r["task_seconds"] for r in results.values())
    print(f"  {'total':<28} {'':>5} {wall:>8.1f} {busy:>8.1f}   ({busy / count * 1e6 / 3600:.2f} core-hours per million documents)")
    return results


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--task":
        stage, folder, rank = sys.argv[2:5]
        return run_task(stage, folder, int(rank))
    parser = argparse.ArgumentParser()
    parser.add_argument("--signature-documents", type=int, default=20000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--memory-mb", type=int, default=512)
    parser.add_argument("--scratch", default=None, help="folder for the runs' files (default: a temporary folder)")
    args = parser.parse_args()
    if args.signature_documents:
        signature_speed(args.signature_documents)
    over = []
    for count in args.sizes:
        with tempfile.TemporaryDirectory(dir=args.scratch) as folder:
            for name, r in whole_dedup(count, args.memory_mb, folder).items():
                if name not in ("signatures", "bands") and r["peak"] > args.memory_mb:
                    over.append(f"{name} at {count:,}: {r['peak']:.0f} MiB")
    print("memory bound kept by the partitioned passes" if not over else "memory bound exceeded: " + "; ".join(over))


if __name__ == "__main__":
    main()
