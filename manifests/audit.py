"""`aurora manifest audit`: recompute every figure of a manifest from the files it names.

Each difference is one line; an empty list means the manifest is exact.
"""

import hashlib
from collections import Counter

import numpy as np

from manifests.manifest import file_sha256
from pipeline.rejects import count_rejects
from pipeline.shards import decode_index


def _audit_shard(folder, shard: dict, eod_id: int | None) -> list[str]:
    prefix = shard["prefix"]
    problems = []
    try:
        with folder.open(f"{prefix}.idx", "rb") as f:
            idx_bytes = f.read()
        with folder.open(f"{prefix}.bin", "rb") as f:
            bin_sha = file_sha256(f)
        bin_size = folder.size(f"{prefix}.bin")
    except FileNotFoundError as e:
        return [f"{prefix}: missing file {e.filename or e}"]
    if hashlib.sha256(idx_bytes).hexdigest() != shard["idx_sha256"]:
        problems.append(f"{prefix}.idx: sha256 differs from the manifest")
    if bin_sha != shard["bin_sha256"]:
        problems.append(f"{prefix}.bin: sha256 differs from the manifest")
    try:
        index = decode_index(idx_bytes)
    except ValueError as e:
        return problems + [f"{prefix}.idx: {e}"]
    tokens = int(index.lengths.sum())
    if len(index.lengths) != shard["documents"]:
        problems.append(f"{prefix}: {len(index.lengths)} documents in the index, manifest says {shard['documents']}")
    if tokens != shard["tokens"]:
        problems.append(f"{prefix}: {tokens} tokens in the index, manifest says {shard['tokens']}")
    if bin_size != tokens * index.dtype.itemsize:
        problems.append(f"{prefix}.bin: {bin_size} bytes, the index implies {tokens * index.dtype.itemsize}")
    elif eod_id is not None and tokens:
        with folder.open(f"{prefix}.bin", "rb") as f:
            data = np.frombuffer(f.read(), dtype=index.dtype)
        ends = np.cumsum(index.lengths.astype(np.int64)) - 1
        bad = int((data[ends] != eod_id).sum())
        if bad:
            problems.append(f"{prefix}.bin: {bad} documents do not end with EOD {eod_id}")
    return problems


def audit_pool(manifest: dict, folder) -> list[str]:
    problems = []
    eod_id = manifest["tokenizer"]["eod_id"]
    for shard in manifest["shards"]:
        problems += _audit_shard(folder, shard, eod_id)
    problems += _totals(manifest)
    documents = sum(s["documents"] for s in manifest["shards"])

    funnel = manifest["funnel"]
    if funnel["kept"] != documents:
        problems.append(f"funnel.kept is {funnel['kept']}, the shards hold {documents}")
    on_disk = count_rejects(folder)
    recorded = Counter(funnel["malformed"]) + Counter(funnel["removed"])
    for reason in sorted(set(on_disk) | set(recorded)):
        if on_disk[reason] != recorded[reason]:
            problems.append(f"funnel reason {reason}: manifest says {recorded[reason]}, rejects/ holds {on_disk[reason]}")
    balance = funnel["kept"] + sum(funnel["malformed"].values()) + sum(funnel["removed"].values())
    if funnel["documents_in"] != balance:
        problems.append(f"funnel.documents_in is {funnel['documents_in']}, kept + removed + malformed is {balance}")
    if "dedup" in manifest:
        problems += _audit_dedup(folder, manifest["dedup"], funnel["removed"])
    return problems


def _audit_dedup(folder, dedup: dict, removed: dict) -> list[str]:
    """clusters.parquet: its checksum, and its kept and removed rows against the manifest."""
    import pyarrow.parquet as pq

    path = dedup["clusters_file"]["path"]
    try:
        with folder.open(path, "rb") as f:
            sha = file_sha256(f)
        with folder.open(path, "rb") as f:
            kept = pq.read_table(f, columns=["kept"]).column("kept").to_pylist()
    except FileNotFoundError:
        return [f"{path}: missing"]
    problems = [] if sha == dedup["clusters_file"]["sha256"] else [f"{path}: sha256 differs from the manifest"]
    duplicates = removed.get("exact_duplicate", 0) + removed.get("near_duplicate", 0)
    if len(kept) - sum(kept) != duplicates:
        problems.append(f"{path}: {len(kept) - sum(kept)} removed documents, the funnel counts {duplicates} duplicates")
    if sum(kept) != dedup["clusters"]:
        problems.append(f"{path}: {sum(kept)} clusters, manifest says {dedup['clusters']}")
    return problems


def _totals(manifest: dict) -> list[str]:
    documents = sum(s["documents"] for s in manifest["shards"])
    tokens = sum(s["tokens"] for s in manifest["shards"])
    totals = manifest["totals"]
    problems = []
    if totals["documents"] != documents:
        problems.append(f"totals.documents is {totals['documents']}, the shards hold {documents}")
    if totals["tokens"] != tokens:
        problems.append(f"totals.tokens is {totals['tokens']}, the shards hold {tokens}")
    return problems


def _stage_pools(manifest: dict, folder) -> tuple[list, list[str]]:
    """Each component's pool folder, checked against the manifest checksum the stage recorded."""
    from datatrove.io import get_datafolder

    from manifests.manifest import MANIFEST
    from pipeline.errors import AuroraError

    pools, problems = [], []
    for component in manifest["components"]:
        pool = component["pool"]
        pool_folder = get_datafolder(f"{folder.path}/{pool['path']}") if pool["in_stage"] else None
        try:
            if pool_folder is None:
                from manifests.manifest import load_manifest

                _, pool_folder = load_manifest(pool["path"])
            with pool_folder.open(MANIFEST, "rb") as f:
                sha = file_sha256(f)
        except (AuroraError, FileNotFoundError):
            problems.append(f"component {component['name']}: pool {pool['path']} not found")
            pools.append(None)
            continue
        if sha != pool["manifest_sha256"]:
            problems.append(f"component {component['name']}: pool {pool['path']} changed since the stage was built")
        pools.append(pool_folder)
    return pools, problems


def audit_stage(manifest: dict, folder, sample_per_shard: int = 16) -> list[str]:
    """Shards and totals as for a pool; then lineage: every stage document's length equals its pool
    document's, a sample of documents have equal tokens, and the components' tokens, recounted from
    the lineage, meet their budgets (at most one document over) and make up the shares recorded."""
    import pyarrow.parquet as pq

    problems = []
    eod_id = manifest["tokenizer"]["eod_id"]
    for shard in manifest["shards"] + manifest.get("validation", []):
        problems += _audit_shard(folder, shard, eod_id)
    problems += _totals(manifest)
    pools, pool_problems = _stage_pools(manifest, folder)
    problems += pool_problems
    if problems:
        return problems

    components = manifest["components"]
    indexes: dict = {}

    def pool_index(c: int, shard: int):
        if (c, shard) not in indexes:
            with pools[c].open(components[c]["pool"]["shards"][shard] + ".idx", "rb") as f:
                indexes[(c, shard)] = decode_index(f.read())
        return indexes[(c, shard)]

    tokens, documents, longest = Counter(), Counter(), Counter()
    for shard in manifest["shards"]:
        lineage = shard["lineage"]
        try:
            with folder.open(lineage["path"], "rb") as f:
                sha = file_sha256(f)
            with folder.open(lineage["path"], "rb") as f:
                rows = pq.read_table(f).to_pydict()
        except FileNotFoundError:
            problems.append(f"{lineage['path']}: missing")
            continue
        if sha != lineage["sha256"]:
            problems.append(f"{lineage['path']}: sha256 differs from the manifest")
        with folder.open(shard["prefix"] + ".idx", "rb") as f:
            index = decode_index(f.read())
        if len(rows["document"]) != len(index.lengths):
            problems.append(f"{lineage['path']}: {len(rows['document'])} rows for {len(index.lengths)} documents")
            continue
        lineage_rows = list(zip(rows["component"], rows["pool_shard"], rows["document"]))
        mismatched = 0
        for i, (c, pool_shard, doc) in enumerate(lineage_rows):
            length = int(pool_index(c, pool_shard).lengths[doc])
            mismatched += length != int(index.lengths[i])
            tokens[c] += length
            documents[c] += 1
            longest[c] = max(longest[c], length)
        if mismatched:
            problems.append(f"{shard['prefix']}: {mismatched} documents differ in length from their pool documents (lineage)")
            continue
        step = max(1, len(lineage_rows) // sample_per_shard)
        with folder.open(shard["prefix"] + ".bin", "rb") as f:
            for i in range(0, len(lineage_rows), step):
                c, pool_shard, doc = lineage_rows[i]
                with pools[c].open(components[c]["pool"]["shards"][pool_shard] + ".bin", "rb") as g:
                    theirs = pool_index(c, pool_shard).read(g, doc)
                if index.read(f, i) != theirs:
                    problems.append(f"{shard['prefix']}: document {i} differs from pool document {doc} of its lineage")
                    break
    if problems:
        return problems

    total = sum(tokens.values())
    for c, component in enumerate(components):
        name = component["name"]
        if tokens[c] != component["tokens"] or documents[c] != component["documents"]:
            problems.append(f"component {name}: lineage holds {tokens[c]:,} tokens in {documents[c]:,} documents, "
                            f"manifest says {component['tokens']:,} in {component['documents']:,}")
        over = tokens[c] - component["budget_tokens"]
        if not 0 <= over < max(longest[c], 1):
            problems.append(f"component {name}: {tokens[c]:,} tokens for a budget of {component['budget_tokens']:,} "
                            "(more than one document off)")
        if total and abs(component["share"] - tokens[c] / total) > 1e-6:
            problems.append(f"component {name}: share {component['share']} recorded, lineage gives {tokens[c] / total:.6f}")
    planned = sum(c["budget_tokens"] for c in components)
    for component in components:
        if abs(component["planned_share"] - component["budget_tokens"] / planned) > 1e-6:
            problems.append(f"component {component['name']}: planned share {component['planned_share']} is not its budget's share")
    return problems


def audit(manifest: dict, folder) -> list[str]:
    if manifest.get("kind") == "pool":
        return audit_pool(manifest, folder)
    if manifest.get("kind") == "stage":
        return audit_stage(manifest, folder)
    return [f"unknown manifest kind {manifest.get('kind')!r}"]
