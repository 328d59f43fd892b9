"""`aurora refilter` against a full rerun of the same changed recipe, on generated documents.

Per language: `bench/curate.py`'s generated web-like documents are curated with
`recipes/demo/<lang>.yaml` (the run whose signals are replayed, not timed), then a changed recipe
(min_lexical_diversity tightened from 0.5 to `--threshold`, 0.85 by default: about 9% of the kept
English documents go, so the documents reaching dedup and its clusters change; the generated
documents' lexical diversity starts at 0.80, so 0.8 removes none) goes through `pipeline.refilter.refilter` from that run and through a full
`pipeline.curate.curate`, each in a child process; seconds, their ratio (target: refilter at
least 10x faster), whether every output file but the logs is byte-identical, and each one's peak
RSS of its largest process (a worker: the largest task's).

    .venv/bin/python bench/refilter.py [--documents 100000] [--languages en] [--workers 2] [--threshold 0.85] [--scratch DIR]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import orjson  # noqa: E402
import yaml  # noqa: E402

from bench.curate import sample_tree, write_inputs  # noqa: E402
from pipeline.recipe import TEXT_LANGUAGES  # noqa: E402

ROOT = sys.path[0]
TIGHTENED = 0.85


def child(kind: str, recipe: str, inputs: str, output: str, run: str, workers: str) -> None:
    from pipeline.curate import curate
    from pipeline.recipe import load_recipe
    from pipeline.refilter import refilter

    start = time.perf_counter()
    if kind == "refilter":
        manifest = refilter(load_recipe(recipe), run, output=output, workers=int(workers))
    else:
        manifest = curate(load_recipe(recipe), inputs=[os.path.join(inputs, "*.jsonl.gz")], output=output, workers=int(workers))
    print(orjson.dumps([time.perf_counter() - start, manifest["funnel"]["kept"]]).decode(), flush=True)
    os._exit(0)  # as `aurora` does: pyarrow's threads may abort the interpreter's teardown


def measure(kind: str, recipe: str, inputs: str, output: str, run: str, workers: int) -> tuple[float, int, float]:
    """Seconds, kept documents, and the peak RSS of the largest process of the child's tree (MiB:
    one task per worker at a time, so the largest task's)."""
    command = [sys.executable, os.path.abspath(__file__), "--run", kind, recipe, inputs, output, run, str(workers)]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
        peak, _ = sample_tree(process)
        out = process.stdout.read()
        if process.returncode != 0:
            log.seek(0)
            raise SystemExit(f"{kind} failed (exit {process.returncode}):\n{log.read()[-3000:].decode(errors='replace')}")
    seconds, kept = orjson.loads(out.strip().splitlines()[-1])
    return seconds, kept, peak


def tightened(original: str, threshold: float, run: str) -> dict:
    """The recipe with min_lexical_diversity at `threshold`, and the quality classifier's cut-off
    pinned to the run's: a top fraction of what the tighter rule leaves could be a lower cut-off,
    letting documents the run removed reach dedup, which a refilter refuses (README, "Signals and
    refilter")."""
    with open(original, encoding="utf-8") as f:
        data = yaml.safe_load(f)
    data["heuristics"]["web_ratios"]["min_lexical_diversity"] = threshold
    if "quality" in data:
        with open(os.path.join(run, "manifest.json"), "rb") as f:
            cutoff = orjson.loads(f.read())["cutoffs"]["quality"]["cutoff"]
        data["quality"] = {"model": data["quality"]["model"], "label": data["quality"].get("label", "hq"),
                           "mode": "min_score", "min_score": cutoff}
    return data


def files(folder: str) -> dict[str, bytes]:
    out = {}
    for root, _, names in os.walk(folder):
        for name in names:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, folder)
            if not relative.startswith("logs") and name != ".lock":
                with open(path, "rb") as f:
                    out[relative] = f.read()
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--run":
        return child(*sys.argv[2:8])
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=100_000)
    parser.add_argument("--languages", nargs="+", choices=TEXT_LANGUAGES, default=["en"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threshold", type=float, default=TIGHTENED, help="the tightened min_lexical_diversity")
    parser.add_argument("--scratch", default=None, help="folder for the runs' files (default: a temporary folder)")
    args = parser.parse_args()
    rows = []
    for language in args.languages:
        with tempfile.TemporaryDirectory(dir=args.scratch) as folder:
            inputs = os.path.join(folder, "inputs")
            write_inputs(language, args.documents, inputs)
            original = os.path.join(ROOT, "recipes", "demo", f"{language}.yaml")
            run = os.path.join(folder, "run")
            first, _, _ = measure("curate", original, inputs, run, "", args.workers)
            print(f"{language}: the run to replay, {args.documents:,} documents, {first:.1f} s", flush=True)
            recipe = os.path.join(folder, "tightened.yaml")
            with open(recipe, "w", encoding="utf-8") as f:
                yaml.safe_dump(tightened(original, args.threshold, run), f, sort_keys=False)
            full, kept, full_peak = measure("curate", recipe, inputs, os.path.join(folder, "full"), "", args.workers)
            again, kept_again, peak = measure("refilter", recipe, inputs, os.path.join(folder, "refilter"), run, args.workers)
            identical = files(os.path.join(folder, "full")) == files(os.path.join(folder, "refilter"))
            print(f"  full rerun {full:.1f} s ({full_peak:,.0f} MiB), refilter {again:.1f} s ({peak:,.0f} MiB), "
                  f"kept {kept:,} / {kept_again:,}, identical {identical}", flush=True)
            rows.append((language, args.documents, full, again, identical, kept, full_peak, peak))
    print(f"\n{args.workers} workers, min_lexical_diversity {args.threshold}\n")
    print("| language | documents | kept | full rerun s | refilter s | full / refilter | byte-identical | peak MiB full / refilter |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |")
    for language, documents, full, again, identical, kept, full_peak, peak in rows:
        print(f"| {language} | {documents:,} | {kept:,} | {full:.1f} | {again:.1f} | {full / again:.1f}x | {'yes' if identical else 'NO'} "
              f"| {full_peak:,.0f} / {peak:,.0f} |")


if __name__ == "__main__":
    main()
