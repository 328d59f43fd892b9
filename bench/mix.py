"""Stage building: tokens/s and peak memory from pools of 1x and 10x size.

Three synthetic pools (random token documents of 20 to 400 tokens, in shards of 2M tokens,
with pool manifests like `aurora curate` writes) at 1x and 10x the documents; a stage taking
half of each pool's tokens, so the stage grows 10x too. Each `aurora mix` runs in its own process
(`--workers 1`, two parts); wall time, stage tokens per second and the process's peak RSS.
Target: peak RSS grows by at most 20% from 1x to 10x.

    .venv/bin/python bench/mix.py [--documents 100000] [--assets assets]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
from datatrove.io import get_datafolder  # noqa: E402

from core.shards import ShardSequence  # noqa: E402
from core.tokenizer import tokenizer_info  # noqa: E402
from manifests.manifest import write_manifest  # noqa: E402

POOLS = ("en", "fi", "code")
SHARD_TOKENS = 2_000_000


def write_pool(path: str, name: str, documents: int, tokenizer: str, seed: int) -> int:
    info = tokenizer_info(tokenizer, "<|endoftext|>")
    rng = np.random.default_rng(seed)
    folder = get_datafolder(path)
    sequence = ShardSequence(folder, f"shards/{name}_00000", np.dtype(np.uint16), SHARD_TOKENS)  # curation's rule
    for start in range(0, documents, 10_000):
        lengths = rng.integers(20, 400, size=min(10_000, documents - start))
        tokens = rng.integers(1, info["vocab_size"], size=int(lengths.sum()), dtype=np.uint16)
        ends = np.cumsum(lengths) - 1
        tokens[ends] = info["eod_id"]
        sequence.add(tokens, lengths.tolist(), [{"source": "bench", "language": name}] * len(lengths))
    shards = sequence.close()
    total = sum(s["tokens"] for s in shards)
    write_manifest(folder, {
        "kind": "pool", "name": name, "language": name, "tokenizer": info, "recipe_sha256": "bench", "inputs": [],
        "shards": shards, "totals": {"documents": documents, "tokens": total},
        "funnel": {"documents_in": documents, "malformed": {}, "removed": {}, "kept": documents},
    })
    return total


def build(documents: int, tokenizer: str, root: str) -> tuple[float, float, int]:
    """(seconds, peak RSS MiB, stage tokens) of one `aurora mix` on pools of this size."""
    totals = {name: write_pool(f"{root}/{name}", name, documents, tokenizer, seed=i) for i, name in enumerate(POOLS)}
    stage_tokens = sum(totals.values()) // 2
    components = "\n".join(
        f"  - {{name: {n}, language: {n}, pool: {root}/{n}, tokens: {totals[n] // 2}, max_epochs: 1}}" for n in POOLS
    )
    recipe = f"{root}/stage.yaml"
    with open(recipe, "w") as f:
        f.write(f"name: bench\nseed: 7\ntokens: {stage_tokens}\noutput: {root}/stage\ntokenizer: {tokenizer}\n"
                f"parts: 2\nmax_shard_tokens: 2000000\ncomponents:\n{components}\n")
    script = (
        "import sys\nfrom aurora.cli import main\ncode = main(['mix', sys.argv[1], '--workers', '1'])\n"
        "print(next(l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM:')))\nsys.exit(code)\n"
    )
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", script, recipe], capture_output=True, text=True,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(result.stderr[-2000:])
    return seconds, int(result.stdout.split()[-1]) / 1024, stage_tokens


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=100_000, help="documents per pool at 1x")
    parser.add_argument("--assets", default="assets")
    args = parser.parse_args()
    tokenizer = os.path.abspath(os.path.join(args.assets, "tokenizer.json"))
    peaks = []
    for scale in (1, 10):
        with tempfile.TemporaryDirectory(prefix="aurora-bench-mix-") as root:
            seconds, peak, tokens = build(args.documents * scale, tokenizer, root)
        peaks.append(peak)
        print(f"{scale:>2}x: {len(POOLS)} pools of {args.documents * scale:,} documents, stage of {tokens:,} tokens: "
              f"{seconds:.1f} s, {tokens / seconds:,.0f} tokens/s, peak RSS {peak:.0f} MiB")
    growth = peaks[1] / peaks[0] - 1
    print(f"peak RSS growth 1x -> 10x: {growth:+.1%} ({'within' if growth <= 0.2 else 'over'} the 20% target)")


if __name__ == "__main__":
    main()
