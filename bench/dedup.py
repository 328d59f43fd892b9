"""Dedup: signature speed against datatrove and datasketch, then the whole dedup at two sizes.

1. Signatures, same documents, one process: our `DedupSignatures` step (which also writes the
   documents' parquet and digests), datatrove's `MinhashDedupSignature` step with the same
   number of hashes (8 bands x 16 = 128, its `num_buckets`; it also sorts its band files), and one datasketch
   `MinHash` per document (`update_batch` on the UTF-8 shingles, its default SHA-1 hash).
   Documents per second and our ratio to each. Target: at least 2x datatrove.
2. The whole dedup (signatures in 4 tasks, the band tasks, the cluster task) on 100,000 and
   1,000,000 short documents with planted exact and near duplicates: each task runs in its own
   process; wall time of each stage and the peak RSS of its largest task. The bands and
   cluster stages must stay under the memory bound (`--memory-mb`) at both sizes.

    .venv/bin/python bench/dedup.py [--signature-documents 20000] [--sizes 100000 1000000]
"""

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from datatrove.data import Document  # noqa: E402
from datatrove.io import get_datafolder  # noqa: E402

from core.text import words  # noqa: E402
from filters.dedup import DedupBands, DedupClusters, DedupLayout, DedupSignatures, lsh_params  # noqa: E402
from tooling.sample import sample_sentences  # noqa: E402

NUM_PERM, THRESHOLD, TASKS = 128, 0.8, 4
BANDS, ROWS = lsh_params(THRESHOLD, NUM_PERM)
LAYOUT = DedupLayout()


def documents(count: int, seed: int = 0) -> list[str]:
    """Short one-line documents of 20 to 60 words; 5% exact copies and 10% near copies (one word changed)."""
    rng = random.Random(seed)
    vocabulary = sorted({w.lower() for s in sample_sentences("en") for w in words(s, "en")})
    texts: list[str] = []
    for _ in range(count):
        roll = rng.random()
        if texts and roll < 0.05:
            texts.append(rng.choice(texts))
        elif texts and roll < 0.15:
            doc = rng.choice(texts).split(" ")
            doc[rng.randrange(len(doc))] = rng.choice(vocabulary)
            texts.append(" ".join(doc))
        else:
            texts.append(" ".join(rng.choices(vocabulary, k=rng.randint(20, 60))))
    return texts


def _docs(texts: list[str]):
    return (Document(text=t, id=str(i), metadata={}) for i, t in enumerate(texts))


def signature_speed(count: int) -> None:
    from datasketch import MinHash
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupSignature

    texts = documents(count, seed=1)
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


def run_task(stage: str, folder: str, rank: int, memory_mb: int) -> None:
    """One task of one stage, in this process (started by `whole_dedup`)."""
    data = get_datafolder(folder)
    if stage == "signatures":
        with open(os.path.join(folder, f"input-{rank}.txt"), encoding="utf-8") as f:
            texts = f.read().split("\n")
        list(DedupSignatures(data, LAYOUT, "en", NUM_PERM, 1, 5).run(_docs(texts), rank=rank))
    elif stage == "bands":
        list(DedupBands(data, LAYOUT, TASKS, NUM_PERM, BANDS, ROWS, memory_mb).run(None, rank=rank))
    else:
        list(DedupClusters(data, LAYOUT, TASKS, BANDS).run(None, rank=0))
    # This process's own peak (ru_maxrss of a child would include its parent's at the fork).
    with open("/proc/self/status") as f:
        print(next(line.split()[1] for line in f if line.startswith("VmHWM:")))


def _stage(stage: str, folder: str, tasks: int, memory_mb: int) -> tuple[float, float]:
    """Runs the stage's tasks one after another, each in its own process: (seconds, peak RSS MiB)."""
    start, peak = time.perf_counter(), 0
    for rank in range(tasks):
        result = subprocess.run([sys.executable, __file__, "--task", stage, folder, str(rank), str(memory_mb)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            raise SystemExit(f"{stage} task {rank} failed: {result.stderr[-2000:]}")
        peak = max(peak, int(result.stdout.split()[-1]) / 1024)
    return time.perf_counter() - start, peak


def whole_dedup(count: int, memory_mb: int) -> dict:
    texts = documents(count, seed=2)
    with tempfile.TemporaryDirectory() as folder:
        for rank in range(TASKS):
            with open(os.path.join(folder, f"input-{rank}.txt"), "w", encoding="utf-8") as f:
                f.write("\n".join(texts[rank::TASKS]))
        results = {
            "signatures": _stage("signatures", folder, TASKS, memory_mb),
            "bands": _stage("bands", folder, BANDS + 1, memory_mb),
            "clusters": _stage("clusters", folder, 1, memory_mb),
        }
        import pyarrow.parquet as pq

        table = pq.read_table(os.path.join(folder, LAYOUT.clusters), columns=["kept"])
        removed = table.num_rows - sum(table.column("kept").to_pylist())
    print(f"whole dedup, {count:,} documents ({removed:,} removed as duplicates), memory bound {memory_mb} MiB:")
    for stage, (seconds, peak) in results.items():
        print(f"  {stage:<10} {seconds:>8.1f} s   peak RSS {peak:>7.0f} MiB")
    return results


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--task":
        stage, folder, rank, memory_mb = sys.argv[2:6]
        return run_task(stage, folder, int(rank), int(memory_mb))
    parser = argparse.ArgumentParser()
    parser.add_argument("--signature-documents", type=int, default=20000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--memory-mb", type=int, default=512)
    args = parser.parse_args()
    signature_speed(args.signature_documents)
    over = []
    for count in args.sizes:
        for stage, (_, peak) in whole_dedup(count, args.memory_mb).items():
            if stage != "signatures" and peak > args.memory_mb:
                over.append(f"{stage} at {count:,}: {peak:.0f} MiB")
    print("memory bound kept" if not over else "memory bound exceeded: " + "; ".join(over))


if __name__ == "__main__":
    main()
