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
    documents = sum(s["documents"] for s in manifest["shards"])
    tokens = sum(s["tokens"] for s in manifest["shards"])
    totals = manifest["totals"]
    if totals["documents"] != documents:
        problems.append(f"totals.documents is {totals['documents']}, the shards hold {documents}")
    if totals["tokens"] != tokens:
        problems.append(f"totals.tokens is {totals['tokens']}, the shards hold {tokens}")

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
    return problems


def audit(manifest: dict, folder) -> list[str]:
    if manifest.get("kind") != "pool":
        return [f"unknown manifest kind {manifest.get('kind')!r}"]
    return audit_pool(manifest, folder)
