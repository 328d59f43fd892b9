"""`aurora refilter` against a full rerun of the same changed recipe, on generated documents.

Per language: `bench/curate.py`'s generated web-like documents are curated with
`recipes/demo/<lang>.yaml` (the run whose signals are replayed, not timed), then a changed recipe
(min_lexical_diversity tightened from 0.5 to `--threshold`, 0.85 by default: about 9% of the kept
English documents go, so the documents reaching dedup and its clusters change; the generated
documents' lexical diversity starts at 0.80, so 0.8 removes none) goes through `pipeline.refilter.refilter` from that run and through a full
`pipeline.curate.curate`, each in a child process; seconds, their ratio (target: refilter at
least 10x faster) and whether every output file but the logs is byte-identical.

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

from bench.curate import write_inputs  # noqa: E402
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


def measure(kind: str, recipe: str, inputs: str, output: str, run: str, workers: int) -> tuple[float, int]:
    command = [sys.executable, os.path.abspath(__file__), "--run", kind, recipe, inputs, output, run, str(workers)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{kind} failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    seconds, kept = orjson.loads(result.stdout.strip().splitlines()[-1])
    return seconds, kept


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
            data = yaml.safe_load(open(original, encoding="utf-8"))
            data["heuristics"]["web_ratios"]["min_lexical_diversity"] = args.threshold
            recipe = os.path.join(folder, "tightened.yaml")
            with open(recipe, "w", encoding="utf-8") as f:
                yaml.safe_dump(data, f, sort_keys=False)
            run = os.path.join(folder, "run")
            first, _ = measure("curate", original, inputs, run, "", args.workers)
            print(f"{language}: the run to replay, {args.documents:,} documents, {first:.1f} s", flush=True)
            full, kept = measure("curate", recipe, inputs, os.path.join(folder, "full"), "", args.workers)
            again, kept_again = measure("refilter", recipe, inputs, os.path.join(folder, "refilter"), run, args.workers)
            identical = files(os.path.join(folder, "full")) == files(os.path.join(folder, "refilter"))
            print(f"  full rerun {full:.1f} s, refilter {again:.1f} s, kept {kept:,} / {kept_again:,}, identical {identical}", flush=True)
            rows.append((language, args.documents, full, again, identical, kept))
    print(f"\n{args.workers} workers, min_lexical_diversity {args.threshold}\n")
    print("| language | documents | kept | full rerun s | refilter s | full / refilter | byte-identical |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for language, documents, full, again, identical, kept in rows:
        print(f"| {language} | {documents:,} | {kept:,} | {full:.1f} | {again:.1f} | {full / again:.1f}x | {'yes' if identical else 'NO'} |")


if __name__ == "__main__":
    main()
