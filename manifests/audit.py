"""`aurora manifest audit`: recompute every figure of a manifest from the files it names.

Each difference is one line; an empty list means the manifest is exact. The manifest's shape and
paths are checked first (`manifest_problems`), so a hostile manifest is problem lines too, and no
file outside its folder is opened.
"""

from collections import Counter

import numpy as np
import orjson

from core.errors import AuroraError
from core.rejects import count_rejects, reject_files
from core.shards import INDEX_HEADER_BYTES, ShardIndex, decode_index
from core.tokenizer import file_sha256
from manifests.schema import manifest_problems


def _unreadable(name: str, e: OSError) -> str:
    if isinstance(e, FileNotFoundError):
        return f"{name}: missing file {e.filename or e}"
    return f"{name}: cannot be read ({e})"


def index_problems(index: ShardIndex) -> list[str]:
    """Is a decoded index one that encode_index writes? Its checksum proves only that it is the file
    the manifest names, so the index is checked against itself: lengths non-negative, each pointer
    the running sum of the lengths before it (in bytes, from 0), document indices 0..n. With the
    size check against the `.bin`, the last document then ends exactly where the `.bin` does."""
    lengths = index.lengths.astype(np.int64)
    problems = []
    negative = int((lengths < 0).sum())
    if negative:
        problems.append(f"{negative} documents have a negative length")
    expected = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1] * index.dtype.itemsize, out=expected[1:])
    wrong = int((index.pointers != expected).sum())
    if wrong:
        problems.append(f"{wrong} pointers are not the running sum of the document lengths")
    if not np.array_equal(index.document_indices, np.arange(len(lengths) + 1)):
        problems.append(f"document indices are not 0..{len(lengths)}")
    return problems


def audit_shard(folder, shard: dict, eod_id: int | None) -> list[str]:
    """One shard against its manifest record: checksums, the index against itself and the `.bin`,
    counts, EOD placement. Only regular files are read (a link to a device or a pipe would never
    end), checksums are streamed, and an index is decoded in memory only when its size is the one
    its document count implies."""
    prefix = shard["prefix"]
    problems = []
    try:
        for ext in ("idx", "bin"):
            if folder.exists(f"{prefix}.{ext}") and not folder.isfile(f"{prefix}.{ext}"):  # a folder, a device, a pipe
                return [f"{prefix}.{ext}: cannot be read (not a file)"]
        idx_size, bin_size = folder.size(f"{prefix}.idx"), folder.size(f"{prefix}.bin")
    except OSError as e:
        return [_unreadable(prefix, e)]
    try:
        with folder.open(f"{prefix}.idx", "rb") as f:
            idx_sha = file_sha256(f)
        with folder.open(f"{prefix}.bin", "rb") as f:
            bin_sha = file_sha256(f)
    except OSError as e:
        return [_unreadable(prefix, e)]
    if idx_sha != shard["idx_sha256"]:
        problems.append(f"{prefix}.idx: sha256 differs from the manifest")
    if bin_sha != shard["bin_sha256"]:
        problems.append(f"{prefix}.bin: sha256 differs from the manifest")
    expected_idx = INDEX_HEADER_BYTES + 20 * shard["documents"] + 8
    if idx_size != expected_idx:
        return problems + [f"{prefix}.idx: {idx_size} bytes, an index of {shard['documents']} documents has {expected_idx}"]
    try:
        with folder.open(f"{prefix}.idx", "rb") as f:
            idx_bytes = f.read()
    except OSError as e:
        return problems + [_unreadable(prefix, e)]
    try:
        index = decode_index(idx_bytes)
    except ValueError as e:
        return problems + [f"{prefix}.idx: {e}"]
    structure = index_problems(index)
    if structure:  # the counts, size and EOD checks below read the index as it should be
        return problems + [f"{prefix}.idx: {p}" for p in structure]
    tokens = int(index.lengths.sum(dtype=np.int64))
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
        empty = index.lengths == 0  # no token, so no EOD
        bad = int(empty.sum()) + int((data[ends[~empty]] != eod_id).sum())
        if bad:
            problems.append(f"{prefix}.bin: {bad} documents do not end with EOD {eod_id}")
    return problems


def audit_pool(manifest: dict, folder) -> list[str]:
    problems = []
    eod_id = manifest["tokenizer"]["eod_id"]
    for shard in manifest["shards"]:
        problems += audit_shard(folder, shard, eod_id)
    problems += _totals(manifest)
    documents = sum(s["documents"] for s in manifest["shards"])

    funnel = manifest["funnel"]
    if funnel["kept"] != documents:
        problems.append(f"funnel.kept is {funnel['kept']}, the shards hold {documents}")
    try:
        on_disk = count_rejects(folder)
    except AuroraError as e:  # a damaged file, a line that is not a reject, a file no run names so
        return problems + [f"rejects/: a file cannot be read as rejects ({e})"]
    except OSError as e:
        return problems + [f"rejects/: a file cannot be read as rejects ({type(e).__name__}: {e})"]
    if "rejects" in manifest:  # a manifest written before rejects had their sha256 recorded: they are counted only
        problems += audit_rejects(folder, manifest["rejects"])
    recorded = Counter(funnel["malformed"]) + Counter(funnel["removed"])
    for reason in sorted(set(on_disk) | set(recorded)):
        if on_disk[reason] != recorded[reason]:
            problems.append(f"funnel reason {reason}: manifest says {recorded[reason]}, rejects/ holds {on_disk[reason]}")
    balance = funnel["kept"] + sum(funnel["malformed"].values()) + sum(funnel["removed"].values())
    if funnel["documents_in"] != balance:
        problems.append(f"funnel.documents_in is {funnel['documents_in']}, kept + removed + malformed is {balance}")
    if "fertility" in manifest:
        problems += _audit_fertility(manifest["fertility"], manifest["totals"])
    if "dedup" in manifest:
        problems += _audit_dedup(folder, manifest["dedup"], funnel["removed"])
    if "signals" in manifest:
        problems += audit_signals(folder, manifest["signals"]["files"], funnel)
    return problems


def audit_checksums(folder, entries: list[dict]) -> list[str]:
    """Each file's sha256 against its manifest entry (`path`, `sha256`). Only regular files are
    read: a link to a device or a pipe would never end."""
    problems = []
    for entry in entries:
        path = entry["path"]
        try:
            if folder.exists(path) and not folder.isfile(path):
                problems.append(f"{path}: cannot be read (not a file)")
                continue
            with folder.open(path, "rb") as f:
                sha = file_sha256(f)
        except OSError as e:
            problems.append(_unreadable(path, e))
            continue
        if sha != entry["sha256"]:
            problems.append(f"{path}: sha256 differs from the manifest")
    return problems


def audit_rejects(folder, recorded: list[dict]) -> list[str]:
    """The rejects files in the folder against the manifest's list of them: the same files, each
    with its sha256 (their counts by reason are the funnel's, checked apart). The counts alone
    would pass a reject whose text was changed, and `aurora refilter` reads those texts back."""
    try:
        on_disk = {file.path for file in reject_files(folder)}
    except AuroraError as e:
        return [f"rejects/: {e}"]
    except OSError as e:
        return [_unreadable("rejects/", e)]
    listed = {entry["path"] for entry in recorded}
    problems = [f"{path}: a rejects file the manifest does not list" for path in sorted(on_disk - listed)]
    return problems + audit_checksums(folder, recorded)


def audit_signals(folder, files: list[dict], funnel: dict) -> list[str]:
    """Each signals file: its checksum and rows; over all of them, the documents kept (no
    `removed_by`) against the funnel's kept. Read column by column: the other columns are not
    needed for the counts, and the checksum covers them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    problems, kept = [], 0
    for entry in files:
        path = entry["path"]
        try:
            with folder.open(path, "rb") as f:
                sha = file_sha256(f)
            if sha != entry["sha256"]:
                problems.append(f"{path}: sha256 differs from the manifest")
            with folder.open(path, "rb") as f:
                column = pq.read_table(f, columns=["removed_by"]).column("removed_by")
        except OSError as e:
            problems.append(_unreadable(path, e))
            continue
        except (pa.ArrowException, KeyError) as e:
            problems.append(f"{path}: not a signals file ({e})")
            continue
        if len(column) != entry["documents"]:
            problems.append(f"{path}: {len(column)} rows, manifest says {entry['documents']} documents")
        kept += column.null_count
    if not problems and kept != funnel["kept"]:
        problems.append(f"signals: {kept} documents without a removal, funnel.kept is {funnel['kept']}")
    return problems


def _audit_dedup(folder, dedup: dict, removed: dict) -> list[str]:
    """The filter pass's files (their checksums; manifests written before they were recorded hold
    none), then the clusters file."""
    return audit_checksums(folder, dedup.get("files", [])) + _audit_clusters(folder, dedup, removed)


def _audit_clusters(folder, dedup: dict, removed: dict) -> list[str]:
    """clusters.parquet: its checksum, and its kept and removed rows against the manifest."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path = dedup["clusters_file"]["path"]
    try:
        with folder.open(path, "rb") as f:
            sha = file_sha256(f)
    except OSError as e:
        return [_unreadable(path, e)]
    problems = [] if sha == dedup["clusters_file"]["sha256"] else [f"{path}: sha256 differs from the manifest"]
    try:
        with folder.open(path, "rb") as f:
            column = pq.read_table(f, columns=["kept"]).column("kept")
    except (OSError, pa.ArrowException) as e:
        return problems + [f"{path}: not a clusters file ({e})"]
    if column.type != pa.bool_() or column.null_count:
        return problems + [f"{path}: its 'kept' column is not all true or false"]
    kept = pc.sum(column).as_py() or 0
    duplicates = removed.get("exact_duplicate", 0) + removed.get("near_duplicate", 0)
    if len(column) - kept != duplicates:
        problems.append(f"{path}: {len(column) - kept} removed documents, the funnel counts {duplicates} duplicates")
    if kept != dedup["clusters"]:
        problems.append(f"{path}: {kept} clusters, manifest says {dedup['clusters']}")
    return problems


def _audit_fertility(fertility: dict, totals: dict) -> list[str]:
    """The fertility counts add up: the sources to the total, and the total to the shards' documents
    and tokens (each document's tokens and its EOD)."""
    problems = []
    total = fertility["total"]
    for name, entry in [*fertility["sources"].items(), ("total", total)]:
        for ratio, of in (("tokens_per_word", "words"), ("tokens_per_character", "characters")):
            expected = round(entry["tokens"] / entry[of], 4) if entry[of] else None
            if entry[ratio] != expected:
                problems.append(f"fertility {name}: {ratio} is {entry[ratio]}, its counts give {expected}")
    for key in ("documents", "tokens", "words", "characters"):
        summed = sum(entry[key] for entry in fertility["sources"].values())
        if summed != total[key]:
            problems.append(f"fertility: the sources' {key} add up to {summed}, the total says {total[key]}")
    if total["documents"] != totals["documents"]:
        problems.append(f"fertility.total.documents is {total['documents']}, the shards hold {totals['documents']}")
    if total["tokens"] + total["documents"] != totals["tokens"]:
        problems.append(f"fertility.total.tokens is {total['tokens']}; with one EOD per document that is not "
                        f"the shards' {totals['tokens']}")
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

    from manifests.manifest import MANIFEST, load_manifest

    pools, problems = [], []
    for component in manifest["components"]:
        pool = component["pool"]
        try:
            if pool["in_stage"]:  # on the stage's own file system (a local folder or the same bucket)
                pool_folder = get_datafolder((f"{folder.path}/{pool['path']}", folder.fs))
            else:
                _, pool_folder = load_manifest(pool["path"])
            with pool_folder.open(MANIFEST, "rb") as f:
                sha = file_sha256(f)
        except FileNotFoundError:
            problems.append(f"component {component['name']}: pool {pool['path']} not found")
            pools.append(None)
            continue
        except (AuroraError, OSError) as e:
            problems.append(f"component {component['name']}: pool {pool['path']}: {e}")
            pools.append(None)
            continue
        if sha != pool["manifest_sha256"]:
            problems.append(f"component {component['name']}: pool {pool['path']} changed since the stage was built")
        pools.append(pool_folder)
    return pools, problems


def read_index(folder, prefix: str, name: str = "") -> ShardIndex | str:
    """A shard's decoded index, or the problem line saying why it cannot be used."""
    try:
        with folder.open(f"{prefix}.idx", "rb") as f:
            index = decode_index(f.read())
    except OSError as e:
        return name + _unreadable(f"{prefix}.idx", e)
    except ValueError as e:
        return f"{name}{prefix}.idx: {e}"
    structure = index_problems(index)
    return f"{name}{prefix}.idx: {structure[0]}" if structure else index


LINEAGE_COLUMNS = ("component", "pool_shard", "document")


def _lineage_rows(folder, path: str) -> list[tuple[int, int, int]] | str:
    """(component, pool shard, document) of each stage document, or the problem line saying why not."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        with folder.open(path, "rb") as f:
            table = pq.read_table(f, columns=list(LINEAGE_COLUMNS))
    except (OSError, pa.ArrowException) as e:
        return f"{path}: not a lineage file ({e})"
    if any(not pa.types.is_integer(column.type) or column.null_count for column in table.columns):
        return f"{path}: lineage columns must be integers without nulls"
    return list(zip(*(table.column(name).to_pylist() for name in LINEAGE_COLUMNS)))


def audit_stage(manifest: dict, folder, sample_per_shard: int = 16) -> list[str]:
    """Shards and totals as for a pool; then lineage: every stage document's length equals its pool
    document's, a sample of documents have equal tokens, and the components' tokens, recounted from
    the lineage, meet their budgets (at most one document over) and make up the shares recorded."""
    problems = []
    eod_id = manifest["tokenizer"]["eod_id"]
    for shard in manifest["shards"] + manifest.get("validation", []):
        problems += audit_shard(folder, shard, eod_id)
    problems += _totals(manifest)
    pools, pool_problems = _stage_pools(manifest, folder)
    problems += pool_problems
    if problems:
        return problems

    components = manifest["components"]
    indexes: dict = {}

    def pool_index(c: int, shard: int) -> ShardIndex | str:
        if (c, shard) not in indexes:
            prefix = components[c]["pool"]["shards"][shard]
            indexes[(c, shard)] = read_index(pools[c], prefix, f"component {components[c]['name']}: pool shard ")
        return indexes[(c, shard)]

    tokens, documents, longest = Counter(), Counter(), Counter()
    for shard in manifest["shards"]:
        path = shard["lineage"]["path"]
        try:
            with folder.open(path, "rb") as f:
                sha = file_sha256(f)
        except OSError as e:
            problems.append(_unreadable(path, e))
            continue
        if sha != shard["lineage"]["sha256"]:
            problems.append(f"{path}: sha256 differs from the manifest")
        rows = _lineage_rows(folder, path)
        if isinstance(rows, str):
            problems.append(rows)
            continue
        index = read_index(folder, shard["prefix"])
        if isinstance(index, str):
            problems.append(index)
            continue
        if len(rows) != len(index.lengths):
            problems.append(f"{path}: {len(rows)} rows for {len(index.lengths)} documents")
            continue
        mismatched, strays, unreadable = 0, 0, {}
        for i, (c, pool_shard, doc) in enumerate(rows):
            theirs = pool_index(c, pool_shard) if 0 <= c < len(components) \
                and 0 <= pool_shard < len(components[c]["pool"]["shards"]) else None
            if isinstance(theirs, str):
                unreadable[theirs] = None
                continue
            if theirs is None or not 0 <= doc < len(theirs.lengths):
                strays += 1
                continue
            length = int(theirs.lengths[doc])
            mismatched += length != int(index.lengths[i])
            tokens[c] += length
            documents[c] += 1
            longest[c] = max(longest[c], length)
        problems += list(unreadable)
        if strays:
            problems.append(f"{path}: {strays} rows name no document of their component's pool")
        if mismatched:
            problems.append(f"{shard['prefix']}: {mismatched} documents differ in length from their pool documents (lineage)")
        if unreadable or strays or mismatched:
            continue
        step = max(1, len(rows) // sample_per_shard)
        with folder.open(shard["prefix"] + ".bin", "rb") as f:
            for i in range(0, len(rows), step):
                c, pool_shard, doc = rows[i]
                pool_bin = components[c]["pool"]["shards"][pool_shard] + ".bin"
                try:
                    with pools[c].open(pool_bin, "rb") as g:
                        theirs = pool_index(c, pool_shard).read(g, doc)
                except OSError as e:
                    problems.append(f"component {components[c]['name']}: pool shard " + _unreadable(pool_bin, e))
                    break
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
    for c, component in enumerate(components):
        if "budget_words" in component:
            problems += _words_budget(component, pools[c])
    planned = sum(c["budget_tokens"] for c in components)
    for component in components:
        if planned and abs(component["planned_share"] - component["budget_tokens"] / planned) > 1e-6:
            problems.append(f"component {component['name']}: planned share {component['planned_share']} is not its budget's share")
    return problems


def _words_budget(component: dict, pool_folder) -> list[str]:
    """A budget given in words: its tokens are the words at the pool's tokens (EOD included) per
    word, which the pool's manifest (unchanged since the stage was built) still gives."""
    from manifests.manifest import MANIFEST

    with pool_folder.open(MANIFEST, "rb") as f:
        pool = orjson.loads(f.read())
    words = pool.get("fertility", {}).get("total", {}).get("words")
    if not words:
        return [f"component {component['name']}: a budget in words, and its pool's manifest counts no words"]
    ratio = pool["totals"]["tokens"] / words
    expected = max(1, round(component["budget_words"] * ratio))
    if component["tokens_per_word"] != round(ratio, 6) or component["budget_tokens"] != expected:
        return [f"component {component['name']}: {component['budget_words']:,} words at its pool's {ratio:.6f} tokens per word "
                f"are {expected:,} tokens, manifest says {component['budget_tokens']:,} at {component['tokens_per_word']}"]
    return []


def audit(manifest, folder) -> list[str]:
    problems = manifest_problems(manifest)  # load_manifest refuses these; a caller may pass any dict
    if problems:
        return problems
    return audit_pool(manifest, folder) if manifest["kind"] == "pool" else audit_stage(manifest, folder)
