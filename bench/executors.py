"""Ray's overhead on one machine: `aurora curate` of each demo recipe with `--executor local` and
`--executor ray`, the same workers, as a user runs it (a process of its own, Ray started and
stopped by it), interleaved, best of `--rounds`. Prints each run's wall seconds and the ratio
ray / local. Target: at most 1.3 on every demo recipe. With `--documents N`, the recipes run on
N generated web-like documents per language (bench/curate.py's generator) instead of the demo
input, which shows how Ray's fixed cost per run (starting the cluster and its workers) weighs as
the input grows. Run after `make demo-data assets`:

    .venv/bin/python bench/executors.py [--languages en fi hi ja vi code] [--workers 2] [--rounds 2] [--documents N]
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[0] = ROOT

from bench.curate import write_inputs  # noqa: E402


def curate_seconds(language: str, executor: str, workers: int, scratch: str, inputs: list[str]) -> float:
    output = os.path.join(scratch, f"{language}-{executor}")
    shutil.rmtree(output, ignore_errors=True)
    command = [sys.executable, "-m", "aurora.cli", "curate", f"recipes/demo/{language}.yaml", "--output", output,
               "--executor", executor, "--workers", str(workers)] + (["--input", *inputs] if inputs else [])
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--languages", nargs="+", default=["en", "fi", "hi", "ja", "vi", "code"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--documents", type=int, help="generated documents per language instead of the demo input")
    args = parser.parse_args()
    if args.documents and "code" in args.languages:
        parser.error("--documents generates web text: leave out code")
    size = f"{args.documents:,} generated documents" if args.documents else "demo input"
    print(f"| recipe | local s | ray s | ray / local |  (best of {args.rounds}, {args.workers} workers, {size})")
    print("|---|---|---|---|")
    worst = 0.0
    with tempfile.TemporaryDirectory(prefix="aurora-bench-executors-") as scratch:
        for language in args.languages:
            inputs = []
            if args.documents:
                folder = os.path.join(scratch, f"{language}-inputs")
                write_inputs(language, args.documents, folder)
                inputs = [os.path.join(folder, "*.jsonl.gz")]
            best = {"local": float("inf"), "ray": float("inf")}
            for _ in range(args.rounds):
                for executor in best:
                    best[executor] = min(best[executor], curate_seconds(language, executor, args.workers, scratch, inputs))
            ratio = best["ray"] / best["local"]
            worst = max(worst, ratio)
            print(f"| {language} | {best['local']:.1f} | {best['ray']:.1f} | {ratio:.2f} |", flush=True)
    print(f"worst ratio {worst:.2f} (target <= 1.3)")


if __name__ == "__main__":
    main()
