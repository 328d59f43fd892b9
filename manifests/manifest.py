"""Pool manifests: what a curation run produced, with checksums, counts and the curation funnel.

`manifest.json` sits at the root of a run's output; shard prefixes are relative to it. It holds
no timestamps or absolute output paths, so two runs of the same recipe on the same inputs
write the same bytes.
"""

from collections import Counter

import orjson

from core.atomic import write_atomic
from core.errors import AuroraError
from core.ledger import read_task_records
from core.tokenizer import file_sha256, tokenizer_info

MANIFEST = "manifest.json"


def build_pool_manifest(folder, recipe, inputs: list[tuple[str, str]], clusters_file: str | None = None,
                        tasks: int | None = None) -> dict:
    """Sum the task ledgers into the manifest; every task must have finished. Curation runs one task
    per input; `tasks` says otherwise (an instruction pool reads all its files in one). With dedup, the
    manifest also records `clusters_file` (the run's clusters parquet, relative to `folder`: the
    path curate's dedup layout gives it)."""
    shards, malformed, removed, redacted, buckets = [], Counter(), Counter(), Counter(), Counter()
    documents_in = 0
    for rank in range(len(inputs) if tasks is None else tasks):
        records = read_task_records(folder, rank)
        if "tokenize" not in records or "read" not in records:
            raise AuroraError(f"task {rank} ({inputs[rank][1]}) did not finish; see {folder.path}/logs and run again")
        documents_in += records["read"]["read"]
        malformed.update(records["read"]["malformed"])
        for record in records.values():
            removed.update(record.get("removed", {}))
            redacted.update(record.get("redacted", {}))
            buckets.update(record.get("perplexity_buckets", {}))
        shards += records["tokenize"]["shards"]
    kept = sum(s["documents"] for s in shards)
    funnel = {
        "documents_in": documents_in,
        "malformed": dict(sorted(malformed.items())),
        "removed": dict(sorted(removed.items())),
        "kept": kept,
    }
    if buckets:  # documents scored per CCNet bucket, kept or not
        funnel["perplexity_buckets"] = {b: buckets[b] for b in ("head", "middle", "tail")}
    if documents_in != kept + sum(malformed.values()) + sum(removed.values()):
        raise AuroraError(f"funnel does not balance: {funnel}")
    manifest = {
        "kind": "pool",
        "name": recipe.name,
        "language": recipe.language,
        "tokenizer": tokenizer_info(recipe.tokenizer, recipe.eod_token),
        "recipe_sha256": recipe.sha256,
        "inputs": [{"source": source, "path": path} for source, path in inputs],
        "shards": shards,
        "totals": {"documents": kept, "tokens": sum(s["tokens"] for s in shards)},
        "funnel": funnel,
    }
    if redacted:
        manifest["redactions"] = dict(sorted(redacted.items()))
    if recipe.dedup:
        manifest["dedup"] = dedup_summary(folder, recipe.dedup, clusters_file)
    return manifest


def dedup_summary(folder, settings: dict, clusters_file: str) -> dict:
    """The dedup settings and the clusters file: its checksum, clusters and documents in them."""
    import pyarrow.parquet as pq

    with folder.open(clusters_file, "rb") as f:
        sha = file_sha256(f)
    with folder.open(clusters_file, "rb") as f:
        kept = pq.read_table(f, columns=["kept"]).column("kept").to_pylist()
    return {
        "settings": dict(sorted(settings.items())),
        "clusters_file": {"path": clusters_file, "sha256": sha},
        "clusters": sum(kept),
        "documents_in_clusters": len(kept),
    }


def write_manifest(folder, manifest: dict) -> None:
    write_atomic(folder, MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")


# --- shape: what every reader of a manifest may rely on, checked before any of them uses it -----

def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_counts(value) -> bool:
    return isinstance(value, dict) and all(_is_integer(n) and n >= 0 for n in value.values())


# (test, what it accepts, as the problem line says it)
TEXT = (lambda v: isinstance(v, str), "a string")
COUNT = (lambda v: _is_integer(v) and v >= 0, "a non-negative integer")
INTEGER = (_is_integer, "an integer")
NUMBER = (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number")
FLAG = (lambda v: isinstance(v, bool), "true or false")
SHA256 = (lambda v: isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v), "a sha256 hex digest")
OBJECT = (lambda v: isinstance(v, dict), "an object")
LIST = (lambda v: isinstance(v, list), "a list")
COUNTS = (_is_counts, "an object of non-negative integers")
TOKEN_ID = (lambda v: v is None or (_is_integer(v) and v >= 0), "a token id or null")

_COMMON = {"kind": TEXT, "name": TEXT, "tokenizer": OBJECT, "shards": LIST, "totals": OBJECT}
_KIND_KEYS = {"pool": {"language": TEXT, "funnel": OBJECT}, "stage": {"language": TEXT, "seed": INTEGER, "components": LIST}}
_TOKENIZER = {"path": TEXT, "sha256": SHA256, "vocab_size": COUNT, "eod_id": TOKEN_ID}
_TOTALS = {"documents": COUNT, "tokens": COUNT}
_SHARD = {"prefix": TEXT, "bin_sha256": SHA256, "idx_sha256": SHA256, "documents": COUNT, "tokens": COUNT}
_CHECKSUMMED_FILE = {"path": TEXT, "sha256": SHA256}
_FUNNEL = {"documents_in": COUNT, "malformed": COUNTS, "removed": COUNTS, "kept": COUNT}
_COMPONENT = {"name": TEXT, "language": TEXT, "pool": OBJECT, "budget_tokens": COUNT, "tokens": COUNT, "documents": COUNT,
              "epochs": NUMBER, "share": NUMBER, "planned_share": NUMBER}
_COMPONENT_POOL = {"path": TEXT, "in_stage": FLAG, "manifest_sha256": SHA256, "shards": LIST}


def path_problem(path) -> str | None:
    """Why `path` is not a relative path inside the manifest's folder (the only kind a manifest
    may name: it is joined to that folder and opened), or None when it is one."""
    if not isinstance(path, str) or not path:
        return "must be a non-empty string"
    if "://" in path or path.startswith(("/", "\\")) or (len(path) > 1 and path[1] == ":") or "\0" in path:
        return f"{path!r} must be a relative path inside the manifest's folder"
    if ".." in path.replace("\\", "/").split("/"):
        return f"{path!r} must not leave the manifest's folder"
    return None


def _fields(value, where: str, fields: dict, problems: list[str]) -> bool:
    """Is `value` an object holding every key of `fields`, each of the type it names? Problems are appended."""
    if not isinstance(value, dict):
        problems.append(f"{where} must be an object")
        return False
    ok = True
    for key, (test, what) in fields.items():
        if key not in value:
            problems.append(f"{where} has no '{key}'")
            ok = False
        elif not test(value[key]):
            problems.append(f"{where}.{key} must be {what}")
            ok = False
    return ok


def _path(value: dict, key: str, where: str, problems: list[str]) -> None:
    reason = path_problem(value[key])
    if reason:
        problems.append(f"{where}.{key} {reason}")


def _shards(shards: list, where: str, problems: list[str], lineage: bool) -> None:
    for i, shard in enumerate(shards):
        here = f"{where}[{i}]"
        if not _fields(shard, here, _SHARD, problems):
            continue
        _path(shard, "prefix", here, problems)
        if lineage and _fields(shard, here, {"lineage": OBJECT}, problems) \
                and _fields(shard["lineage"], f"{here}.lineage", _CHECKSUMMED_FILE, problems):
            _path(shard["lineage"], "path", f"{here}.lineage", problems)


def manifest_problems(manifest) -> list[str]:
    """The manifest's shape, checked before anything reads it: the keys and types its kind (pool or
    stage) requires, and every path it names a relative one inside its folder. [] when usable."""
    if not isinstance(manifest, dict):
        return [f"the manifest must be a JSON object, not {type(manifest).__name__}"]
    kind = manifest.get("kind")
    if kind not in _KIND_KEYS:
        return [f"unknown manifest kind {kind!r}"]
    problems: list[str] = []
    if not _fields(manifest, "manifest", _COMMON | _KIND_KEYS[kind], problems):
        return problems
    _fields(manifest["tokenizer"], "tokenizer", _TOKENIZER, problems)
    _fields(manifest["totals"], "totals", _TOTALS, problems)
    _shards(manifest["shards"], "shards", problems, lineage=kind == "stage")
    if kind == "pool":
        _fields(manifest["funnel"], "funnel", _FUNNEL, problems)
        if "perplexity_buckets" in manifest["funnel"] and not _is_counts(manifest["funnel"]["perplexity_buckets"]):
            problems.append(f"funnel.perplexity_buckets must be {COUNTS[1]}")
        if "redactions" in manifest and not _is_counts(manifest["redactions"]):
            problems.append(f"redactions must be {COUNTS[1]}")
        if "dedup" in manifest and _fields(manifest["dedup"], "dedup", {"clusters_file": OBJECT, "clusters": COUNT}, problems) \
                and _fields(manifest["dedup"]["clusters_file"], "dedup.clusters_file", _CHECKSUMMED_FILE, problems):
            _path(manifest["dedup"]["clusters_file"], "path", "dedup.clusters_file", problems)
        return problems
    if "validation" in manifest:
        if isinstance(manifest["validation"], list):
            _shards(manifest["validation"], "validation", problems, lineage=False)
        else:
            problems.append("manifest.validation must be a list")
    for i, component in enumerate(manifest["components"]):
        here = f"components[{i}]"
        if not _fields(component, here, _COMPONENT, problems) \
                or not _fields(component["pool"], f"{here}.pool", _COMPONENT_POOL, problems):
            continue
        pool = component["pool"]
        if pool["in_stage"]:  # inside the stage's folder; a curated pool's path is where the recipe found it
            _path(pool, "path", f"{here}.pool", problems)
        for j, prefix in enumerate(pool["shards"]):  # relative to the pool's folder
            reason = path_problem(prefix)
            if reason:
                problems.append(f"{here}.pool.shards[{j}] {reason}")
    return problems


def load_manifest(path: str) -> tuple[dict, object]:
    """Read a manifest (a manifest.json or its folder; local or s3://) -> (manifest, its folder).
    A manifest of the wrong shape, or naming a path outside its folder, is an AuroraError."""
    from datatrove.io import get_datafolder

    root = path[: -len(MANIFEST)].rstrip("/") if path.endswith(MANIFEST) else path
    folder = get_datafolder(root or ".")
    try:
        with folder.open(MANIFEST, "rb") as f:
            manifest = orjson.loads(f.read())
    except FileNotFoundError:
        raise AuroraError(f"no manifest at {path}") from None
    except IsADirectoryError:
        raise AuroraError(f"{path}: {MANIFEST} is a folder, not a manifest") from None
    except orjson.JSONDecodeError as e:
        raise AuroraError(f"{path}: manifest is not valid JSON ({e})") from None
    problems = manifest_problems(manifest)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise AuroraError(f"{path}: invalid manifest: {problems[0]}{more}")
    return manifest, folder


def format_stage(manifest: dict) -> str:
    """A plain-text table of a stage's components: budgets, actual tokens and shares."""
    lines = [f"stage {manifest['name']}: {manifest['totals']['tokens']:,} tokens in {manifest['totals']['documents']:,} "
             f"documents, {len(manifest['shards'])} shards, seed {manifest['seed']}",
             f"{'component':<16} {'language':<8} {'budget':>12} {'tokens':>12} {'documents':>10} {'epochs':>7} {'share':>7}"]
    for c in manifest["components"]:
        lines.append(f"{c['name']:<16} {c['language']:<8} {c['budget_tokens']:>12,} {c['tokens']:>12,} {c['documents']:>10,} "
                     f"{c['epochs']:>7.2f} {c['share']:>7.1%}")
    return "\n".join(lines)


def format_manifest(manifest: dict) -> str:
    """A plain-text table of the shards, totals and funnel."""
    if manifest["kind"] == "stage":
        return format_stage(manifest)
    lines = [f"{manifest['kind']} {manifest['name']} ({manifest['language']}), tokenizer {manifest['tokenizer']['path']}"]
    width = max([len(s["prefix"]) for s in manifest["shards"]] + [5])
    lines.append(f"{'shard':<{width}}  {'source':<10} {'documents':>10} {'tokens':>12}")
    for s in manifest["shards"]:
        lines.append(f"{s['prefix']:<{width}}  {str(s['source']):<10} {s['documents']:>10,} {s['tokens']:>12,}")
    totals = manifest["totals"]
    lines.append(f"{'total':<{width}}  {'':<10} {totals['documents']:>10,} {totals['tokens']:>12,}")
    funnel = manifest["funnel"]
    lines.append("")
    lines.append(f"funnel: {funnel['documents_in']:,} in")
    for group in ("malformed", "removed"):
        for reason, n in funnel[group].items():
            lines.append(f"  - {n:>8,}  {group}: {reason}")
    lines.append(f"  = {funnel['kept']:>8,}  kept")
    if "perplexity_buckets" in funnel:
        lines.append("  perplexity buckets: " + ", ".join(f"{b} {n:,}" for b, n in funnel["perplexity_buckets"].items()))
    for kind, n in manifest.get("redactions", {}).items():
        lines.append(f"  PII redacted: {n:,} {kind}")
    return "\n".join(lines)
