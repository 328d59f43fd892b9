"""The demo's outputs as sha256s: a check that a change which should change no output byte does not.

Runs, with the code of the current directory: `aurora curate` of every demo recipe
(`recipes/demo/<lang>.yaml` on `data/demo`, assets from `assets/`), `aurora mix` of the CAP and
CAT stages, and `aurora refilter` of the en run under a recipe with `min_lexical_diversity`
tightened to 0.9 and `max_dup_line_frac` dropped (documents leave and others move to another
rule), the quality classifier's cut-off pinned to the run's. Then it writes `{file: sha256}` of
every output file but the logs and the lock (manifests, shards, signals, rejects, dedup files,
run.json) to `--digest`, and with `--against`, compares it with an earlier digest: each file that
differs, is missing or is new, one per line, and exit 1.

    .venv/bin/python bench/demo_digest.py --scratch DIR --digest after.json [--against before.json]

Run it before and after a change from a checkout at the same path (the digest holds the inputs'
absolute paths, in `run.json`, the manifests and malformed rejects): a worktree of the old commit
(`git worktree add /tmp/x OLD`, with `assets` and `data` linked in), then the same worktree with
the new files copied over it; both on the same `assets/` and `data/demo`.
"""

import argparse
import hashlib
import json
import os
import subprocess
import sys

import yaml

LANGUAGES = ("en", "fi", "hi", "ja", "vi", "code")
STAGES = ("cap", "cat")


def aurora(*args: str) -> None:
    result = subprocess.run([sys.executable, "-m", "aurora", *args], capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"aurora {' '.join(args)} failed:\n{result.stdout}{result.stderr}")


def digest(folder: str) -> dict[str, str]:
    files = {}
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "logs")
        for name in sorted(names):
            if name in (".lock", "run.lock"):
                continue
            path = os.path.join(root, name)
            with open(path, "rb") as f:
                files[os.path.relpath(path, folder)] = hashlib.sha256(f.read()).hexdigest()
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scratch", required=True, help="a new folder for the runs and their recipes")
    parser.add_argument("--digest", required=True, help="where the {file: sha256} JSON goes")
    parser.add_argument("--against", help="an earlier digest to compare with")
    args = parser.parse_args()
    scratch = os.path.abspath(args.scratch)
    os.makedirs(scratch)
    outputs = {}

    def recipe(name: str, change=None) -> str:
        with open(f"recipes/demo/{name}.yaml") as f:
            data = yaml.safe_load(f)
        data["output"] = outputs[name] = os.path.join(scratch, name)
        if change:
            change(data)
        path = os.path.join(scratch, f"{name}{'-changed' if change else ''}.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(data, f, sort_keys=False)
        return path

    for lang in LANGUAGES:
        aurora("curate", recipe(lang), "--workers", "2")
    for stage in STAGES:  # a stage recipe names its pools by their output folders
        with open(f"recipes/demo/{stage}.yaml") as f:
            text = f.read()
        text = text.replace("out/demo/", scratch + "/")
        path = os.path.join(scratch, f"{stage}.yaml")
        with open(path, "w") as f:
            f.write(text)
        aurora("mix", path, "--workers", "2")

    with open(os.path.join(outputs["en"], "manifest.json"), "rb") as f:
        cutoff = json.load(f)["cutoffs"]["quality"]["cutoff"]

    def tighten(data):
        data["heuristics"]["web_ratios"]["min_lexical_diversity"] = 0.9
        data["heuristics"]["gopher_repetition"]["max_dup_line_frac"] = None
        # The run's quality cut-off, pinned: a top fraction of what the tighter rules leave could be lower (README, "Signals and refilter").
        data["quality"] = {**data["quality"], "mode": "min_score", "min_score": cutoff}
        del data["quality"]["fraction"], data["quality"]["sample_documents"]

    changed = recipe("en", tighten)
    aurora("refilter", changed, "--from", outputs["en"], "--output", os.path.join(scratch, "en-refiltered"), "--workers", "2")

    files = digest(scratch)
    files = {path: sha for path, sha in files.items() if not path.endswith(".yaml")}
    with open(args.digest, "w") as f:
        json.dump(files, f, indent=1, sort_keys=True)
    print(f"{len(files)} files, digest in {args.digest}")
    if args.against:
        with open(args.against) as f:
            before = json.load(f)
        differ = [f"differs: {p}" for p in sorted(set(files) & set(before)) if files[p] != before[p]]
        differ += [f"missing: {p}" for p in sorted(set(before) - set(files))]
        differ += [f"new: {p}" for p in sorted(set(files) - set(before))]
        print("\n".join(differ) or f"byte-identical to {args.against}: {len(files)} files")
        sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
