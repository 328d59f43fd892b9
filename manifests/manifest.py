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
from core.rejects import reject_files
from core.storage import uri
from core.tokenizer import file_sha256, tokenizer_info
from manifests.schema import manifest_problems

MANIFEST = "manifest.json"


class ManifestMissing(AuroraError):
    """No manifest where one was named (as against one that is there but unusable)."""


MAX_MANIFEST_BYTES = 1 << 28


def build_pool_manifest(folder, recipe, inputs: list[tuple[str, str]], clusters_file: str | None = None,
                        units: list[str] | None = None, signals: dict | None = None, eval_sets: list[dict] | None = None,
                        dedup_files: list[str] | None = None) -> dict:
    """Sum the task ledgers into the manifest; every task must have finished. `units` names what each
    task read (curation: one work unit of the inputs per task); without it, one task read all the
    inputs (an instruction pool). Every rejects file is recorded with its sha256. With dedup, the
    manifest also records `clusters_file` (the run's clusters parquet, relative to `folder`: the
    path curate's dedup layout gives it) and `dedup_files` (the filter pass's files, which a
    refilter copies from) with their sha256. `signals` (curation): the signals files of the tasks
    and their `basis`, recorded with each file's sha256 and rows (`signals_summary`). `eval_sets`:
    the evaluation sets the documents were decontaminated against (name, path, sha256, items).
    `cutoffs`: the cut-offs a step took from the sampling pass and put in its ledger (a quality
    classifier's top fraction). `fertility`: the tokenizer's tokens per word and per character on
    the kept documents, per source and in all (`fertility_summary`)."""
    shards, malformed, removed, redacted, buckets, cutoffs = [], Counter(), Counter(), Counter(), Counter(), {}
    fertility: dict[str, Counter] = {}
    documents_in = 0
    for rank in range(1 if units is None else len(units)):
        records = read_task_records(folder, rank)
        if "tokenize" not in records or "read" not in records:
            what = "all its inputs" if units is None else units[rank]
            raise AuroraError(f"task {rank} ({what}) did not finish; see {uri(folder)}/logs and run again")
        documents_in += records["read"]["read"]
        malformed.update(records["read"]["malformed"])
        for record in records.values():
            removed.update(record.get("removed", {}))
            redacted.update(record.get("redacted", {}))
            buckets.update(record.get("perplexity_buckets", {}))
            cutoffs.update(record.get("cutoffs", {}))  # a step's cut-off from the sampling pass, the same in every task
        shards += records["tokenize"]["shards"]
        for source, counts in records["tokenize"]["fertility"].items():
            fertility.setdefault(source, Counter()).update(counts)
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
        "rejects": checksummed(folder, [file.path for file in reject_files(folder)]),
        "fertility": fertility_summary(fertility),
    }
    if redacted:
        manifest["redactions"] = dict(sorted(redacted.items()))
    if cutoffs:
        manifest["cutoffs"] = dict(sorted(cutoffs.items()))
    if recipe.dedup:
        manifest["dedup"] = dedup_summary(folder, recipe.dedup, clusters_file, dedup_files)
    if signals is not None:
        manifest["signals"] = signals_summary(folder, signals["files"], signals["basis"])
    if eval_sets is not None:
        manifest["decontamination"] = eval_sets
    return manifest


def fertility_summary(counts: dict[str, Counter]) -> dict:
    """Per source and in all: documents, tokens (EOD excluded), words and characters of the kept
    documents, and the tokenizer's fertility, tokens per word and per character (null without
    words or characters)."""

    def entry(c: Counter) -> dict:
        n = {key: c[key] for key in ("documents", "tokens", "words", "characters")}
        return n | {"tokens_per_word": round(n["tokens"] / n["words"], 4) if n["words"] else None,
                    "tokens_per_character": round(n["tokens"] / n["characters"], 4) if n["characters"] else None}

    return {"sources": {source: entry(c) for source, c in sorted(counts.items())}, "total": entry(sum(counts.values(), Counter()))}


def signals_summary(folder, paths: list[str], basis: dict) -> dict:
    """Each signals file with its sha256 and rows (documents), and what the signals depend on
    beyond the thresholds (`basis`, which `aurora refilter` compares with the new recipe's)."""
    import pyarrow.parquet as pq

    files = checksummed(folder, paths)
    for entry in files:
        with folder.open(entry["path"], "rb") as f:
            entry["documents"] = pq.ParquetFile(f).metadata.num_rows
    return {"basis": basis, "files": files}


def checksummed(folder, paths: list[str]) -> list[dict]:
    """Each file with its sha256: how the manifest records a file that a later step reads back."""
    files = []
    for path in paths:
        with folder.open(path, "rb") as f:
            files.append({"path": path, "sha256": file_sha256(f)})
    return files


def dedup_summary(folder, settings: dict, clusters_file: str, files: list[str]) -> dict:
    """The dedup settings, the clusters file (its checksum, clusters and documents in them) and
    the filter pass's files with their checksums."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    with folder.open(clusters_file, "rb") as f:
        kept = pq.read_table(f, columns=["kept"]).column("kept")
    return {
        "settings": dict(sorted(settings.items())),
        "clusters_file": checksummed(folder, [clusters_file])[0],
        "clusters": pc.sum(kept).as_py() or 0,
        "documents_in_clusters": len(kept),
        "files": checksummed(folder, files),
    }


def write_manifest(folder, manifest: dict) -> None:
    """Write a manifest that keeps the schema; a builder that breaks it is a bug, stopped here."""
    problems = manifest_problems(manifest)
    if problems:
        raise ValueError(f"the manifest built breaks its schema: {'; '.join(problems)}")
    write_atomic(folder, MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")


def load_manifest(path: str) -> tuple[dict, object]:
    """Read a manifest (a manifest.json or its folder; local or s3://) -> (manifest, its folder).
    A manifest of the wrong shape, or naming a path outside its folder, is an AuroraError."""
    from datatrove.io import get_datafolder

    root = path[: -len(MANIFEST)].rstrip("/") if path.endswith(MANIFEST) else path
    folder = get_datafolder(root or ".")
    try:
        with folder.open(MANIFEST, "rb") as f:
            raw = f.read(MAX_MANIFEST_BYTES + 1)  # bounded: the path may name a device or a huge file
        if len(raw) > MAX_MANIFEST_BYTES:
            raise AuroraError(f"{path}: larger than {MAX_MANIFEST_BYTES:,} bytes, not a manifest")
        manifest = orjson.loads(raw)
    except FileNotFoundError:
        raise ManifestMissing(f"no manifest at {path}") from None
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


def format_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def format_manifest(manifest: dict) -> str:
    """A plain-text table of the shards, totals and funnel."""
    if manifest["kind"] == "stage":
        return format_stage(manifest)
    lines = [f"{manifest['kind']} {manifest['name']} ({manifest['language']}), tokenizer {manifest['tokenizer']['path']}"]
    width = max([len(s["prefix"]) for s in manifest["shards"]] + [5])
    lines.append(f"{'shard':<{width}}  {'source':<10} {'documents':>10} {'tokens':>12}")
    for s in manifest["shards"]:
        lines.append(f"{s['prefix']:<{width}}  {str(s.get('source', '')):<10} {s['documents']:>10,} {s['tokens']:>12,}")
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
    if "fertility" in manifest:
        lines.append("")
        lines.append(f"fertility on the kept documents ({manifest['language']}): tokens per word, per character")
        for source, f in [*manifest["fertility"]["sources"].items(), ("total", manifest["fertility"]["total"])]:
            lines.append(f"  {source:<12} {format_ratio(f['tokens_per_word']):>6} {format_ratio(f['tokens_per_character']):>6}"
                         f"  ({f['words']:,} words, {f['characters']:,} characters)")
    for step, cutoff in manifest.get("cutoffs", {}).items():
        lines.append(f"  {step} cut-off: {cutoff['cutoff']:.4g} (the best {cutoff['fraction']:.0%} of a sample of {cutoff['sample_documents']:,})")
    return "\n".join(lines)
