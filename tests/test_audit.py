"""The audit against hostile and damaged manifests: problem lines or one `aurora: error:` line, never a
traceback, and no file outside the manifest's folder opened. Pools and stages are written by hand
with ShardWriter (milliseconds), in the layout manifests/manifest.py and pipeline/mix/ write."""

import gzip
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datatrove.io import get_datafolder

from core.errors import AuroraError
from core.shards import ShardWriter
from core.tokenizer import file_sha256
from manifests.audit import audit
from manifests.manifest import load_manifest
from manifests.report import write_report
from manifests.schema import manifest_problems

ROOT = Path(__file__).resolve().parents[1]
EOD = 0
DOCUMENTS = [[[5, 6, EOD], [7, EOD], [8, 9, 10, EOD]], [[1, 2, 3, EOD]]]  # two shards of token ids


def _write_pool(folder: Path, name: str = "fi") -> dict:
    """A pool of two shards and its manifest.json, as curation writes them."""
    data = get_datafolder(str(folder))
    shards = []
    for n, documents in enumerate(DOCUMENTS):
        writer = ShardWriter(data, f"shards/{name}_00000_{n:04d}", np.dtype(np.uint16))
        for tokens in documents:
            writer.add(np.array(tokens))
        shards.append({**writer.close(), "source": "web", "language": "fi"})
    documents = sum(s["documents"] for s in shards)
    manifest = {
        "kind": "pool", "name": name, "language": "fi",
        "tokenizer": {"path": "assets/tokenizer.json", "sha256": "ab" * 32, "vocab_size": 100, "eod_id": EOD},
        "recipe_sha256": "cd" * 32, "inputs": [{"source": "web", "path": "data/fi/*.jsonl.gz"}],
        "shards": shards,
        "totals": {"documents": documents, "tokens": sum(s["tokens"] for s in shards)},
        "funnel": {"documents_in": documents, "malformed": {}, "removed": {}, "kept": documents},
    }
    _save(folder, manifest)
    return manifest


def _save(folder: Path, manifest) -> None:
    (folder / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture
def pool(tmp_path) -> tuple[Path, dict]:
    run = tmp_path / "run"
    return run, _write_pool(run)


@pytest.fixture
def stage(tmp_path) -> tuple[Path, dict]:
    """A stage of one component (an in-stage pool under sources/) whose one shard holds the pool's
    documents in reverse order, with its lineage file."""
    folder = tmp_path / "stage"
    pool = _write_pool(folder / "sources" / "web", "web")
    rows = [(0, s, d) for s in range(len(DOCUMENTS)) for d in range(len(DOCUMENTS[s]))][::-1]
    writer = ShardWriter(get_datafolder(str(folder)), "shards/cap_00000_0000", np.dtype(np.uint16))
    for _, s, d in rows:
        writer.add(np.array(DOCUMENTS[s][d]))
    shard = writer.close()
    (folder / "lineage").mkdir()
    _write_lineage(folder / "lineage" / "cap_00000_0000.parquet", rows)
    shard["lineage"] = {"path": "lineage/cap_00000_0000.parquet", "sha256": _sha(folder / "lineage" / "cap_00000_0000.parquet")}
    tokens = pool["totals"]["tokens"]
    manifest = {
        "kind": "stage", "name": "cap", "language": "fi", "tokenizer": pool["tokenizer"], "recipe_sha256": "ef" * 32,
        "seed": 0, "parts": 1, "planned_tokens": tokens,
        "components": [{
            "name": "web", "language": "fi",
            "pool": {"path": "sources/web", "in_stage": True, "manifest_sha256": _sha(folder / "sources/web/manifest.json"),
                     "shards": [s["prefix"] for s in pool["shards"]]},
            "available_tokens": tokens, "budget_tokens": tokens, "tokens": tokens, "documents": len(rows),
            "epochs": 1.0, "full_epochs": 1, "cut": None, "holdout": None, "planned_share": 1.0, "share": 1.0,
        }],
        "shards": [shard],
        "totals": {"documents": len(rows), "tokens": tokens},
    }
    _save(folder, manifest)
    return folder, manifest


def _write_lineage(path: Path, rows) -> None:
    component, pool_shard, document = zip(*rows)
    pq.write_table(pa.table({"component": pa.array(component, pa.int32()), "pool_shard": pa.array(pool_shard, pa.int32()),
                             "document": pa.array(document, pa.int64())}), path)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aurora.cli", *args], capture_output=True, text=True, cwd=ROOT)


class _OpenedFiles:
    """Every path the process opens while recording (a Python audit hook sees each `open`)."""

    paths: list[str] | None = None

    @classmethod
    def hook(cls, event, args):
        if event == "open" and cls.paths is not None and isinstance(args[0], (str, bytes, Path)):
            cls.paths.append(str(Path(args[0] if not isinstance(args[0], bytes) else args[0].decode()).resolve()))


sys.addaudithook(_OpenedFiles.hook)


@pytest.fixture
def opened():
    _OpenedFiles.paths = []
    yield _OpenedFiles.paths
    _OpenedFiles.paths = None


# --- a good pool and stage: the baseline the hostile cases change one thing of -----------------

def test_hand_made_pool_and_stage_pass_the_audit(pool, stage):
    assert audit(*load_manifest(str(pool[0]))) == []
    assert audit(*load_manifest(str(stage[0] / "manifest.json"))) == []


# --- paths outside the manifest's folder ----------------------------------------------------------

def test_traversal_prefix_is_a_problem_and_the_outside_file_is_never_opened(pool, opened):
    run, manifest = pool
    outside = run.parent / "outside"
    outside.mkdir()
    for ext in (".bin", ".idx"):  # a valid shard there, so only the path check can stop the audit reading it
        (outside / f"secret{ext}").write_bytes((run / manifest["shards"][0]["prefix"]).with_suffix(ext).read_bytes())
    manifest["shards"][0]["prefix"] = "../outside/secret"
    _save(run, manifest)
    opened.clear()  # the writes above
    with pytest.raises(AuroraError, match=r"shards\[0\]\.prefix '\.\./outside/secret' must not leave the manifest's folder"):
        load_manifest(str(run))
    problems = audit(manifest, get_datafolder(str(run)))
    assert problems == ["shards[0].prefix '../outside/secret' must not leave the manifest's folder"]
    assert not [p for p in opened if p.startswith(str(outside.resolve()))], opened


@pytest.mark.parametrize("prefix", ["/etc/passwd", "s3://bucket/shards/x", "shards/../../../etc/passwd", "C:\\shards\\x"])
def test_absolute_protocol_and_dotdot_prefixes_are_problems(pool, opened, prefix):
    run, manifest = pool
    manifest["shards"][1]["prefix"] = prefix
    problems = audit(manifest, get_datafolder(str(run)))
    assert len(problems) == 1 and problems[0].startswith(f"shards[1].prefix {prefix!r} must"), problems
    assert not [p for p in opened if p.startswith("/etc")], opened


def test_every_path_a_manifest_names_is_checked(pool, stage):
    _, manifest = pool
    manifest["dedup"] = {"settings": {}, "clusters_file": {"path": "/etc/passwd", "sha256": "00" * 32}, "clusters": 1}
    assert manifest_problems(manifest) == ["dedup.clusters_file.path '/etc/passwd' must be a relative path inside the manifest's folder"]

    _, manifest = stage
    manifest["shards"][0]["lineage"]["path"] = "../lineage.parquet"
    manifest["validation"] = [{**manifest["shards"][0], "prefix": "/abs/validation"}]
    manifest["components"][0]["pool"]["path"] = "sources/../../pool"
    manifest["components"][0]["pool"]["shards"][0] = "s3://elsewhere/x"
    assert [p.split(" ")[0] for p in manifest_problems(manifest)] == [
        "shards[0].lineage.path", "validation[0].prefix", "components[0].pool.path", "components[0].pool.shards[0]"]
    # A curated pool outside the stage is named where the recipe found it: absolute paths are fine there.
    manifest = json.loads((stage[0] / "manifest.json").read_text())
    manifest["components"][0]["pool"].update(path="/data/pools/web", in_stage=False)
    assert manifest_problems(manifest) == []


def test_cli_audit_of_a_traversal_prefix_is_one_line_and_no_traceback(pool):
    run, manifest = pool
    manifest["shards"][0]["prefix"] = "../../../etc/passwd"
    _save(run, manifest)
    result = _cli("manifest", "audit", str(run / "manifest.json"))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"aurora: error: {run / 'manifest.json'}: invalid manifest: shards[0].prefix '../../../etc/passwd' must not leave the manifest's folder"]


# --- manifests of the wrong shape --------------------------------------------------------------------

def test_manifest_without_funnel(pool):
    run, manifest = pool
    del manifest["funnel"]
    _save(run, manifest)
    assert audit(manifest, get_datafolder(str(run))) == ["manifest has no 'funnel'"]
    with pytest.raises(AuroraError, match="invalid manifest: manifest has no 'funnel'$"):
        load_manifest(str(run))
    result = _cli("manifest", "show", str(run))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"aurora: error: {run}: invalid manifest: manifest has no 'funnel'"


def test_json_list_manifest(pool, tmp_path):
    run, manifest = pool
    _save(run, [manifest])
    assert audit([manifest], get_datafolder(str(run))) == ["the manifest must be a JSON object, not list"]
    result = _cli("manifest", "audit", str(run))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip() == f"aurora: error: {run}: invalid manifest: the manifest must be a JSON object, not list"
    with pytest.raises(AuroraError, match="not list"):
        write_report([str(run)], str(tmp_path / "report"))


@pytest.mark.parametrize("path, value, expected", [
    (["shards"], {}, "manifest.shards must be a list"),
    (["shards", 0, "documents"], "3", "shards[0].documents must be a non-negative integer"),
    (["shards", 1], "shards/x", "shards[1] must be an object"),
    (["totals", "tokens"], True, "totals.tokens must be a non-negative integer"),
    (["funnel", "removed"], ["language"], "funnel.removed must be an object of non-negative integers"),
    (["tokenizer", "eod_id"], "<|endoftext|>", "tokenizer.eod_id must be a token id or null"),
    (["shards", 0, "bin_sha256"], None, "shards[0].bin_sha256 must be a sha256 hex digest"),
    (["kind"], "corpus", "unknown manifest kind 'corpus'"),
    (["inputs"], [{"path": 1}], "inputs[0] has no 'source'"),
    (["inputs", 0, "path"], 1, "inputs[0].path must be a string"),
    (["recipe_sha256"], None, "manifest.recipe_sha256 must be a sha256 hex digest"),
    (["signals"], {"basis": {}, "files": []}, "signals.basis has no 'language'"),
    (["signals"], {"basis": {"language": "fi", "read": {"max_document_bytes": 1, "unit_bytes": 1},
                             "tokenizer": {"sha256": "ab" * 32, "eod_token": "<|endoftext|>"}, "lid_model": "ab" * 32,
                             "heuristics": {"gopher_quality": []}, "dedup": {"num_perm": "128"}}, "files": []},
     "signals.basis.heuristics.gopher_quality must be an object"),
    (["rejects"], [{"path": "shards/fi_00000_0000.bin", "sha256": "ab" * 32}],
     "rejects[0].path 'shards/fi_00000_0000.bin' is not a rejects file of a run"),
    (["rejects"], {"path": "rejects/language/00000.jsonl.gz"}, "rejects must be a list"),
    (["cutoffs"], {"quality": {"cutoff": "0.5", "fraction": 0.9, "sample_documents": 100}}, "cutoffs.quality.cutoff must be a number"),
    (["cutoffs"], [0.5], "manifest.cutoffs must be an object"),
    (["dedup"], {"clusters_file": {"path": "clusters.parquet", "sha256": "ab" * 32}, "clusters": 0, "files": [{"path": "dedup/x"}]},
     "dedup.files[0] has no 'sha256'"),
])
def test_wrong_types_are_problems_not_tracebacks(pool, tmp_path, path, value, expected):
    run, manifest = pool
    target = manifest
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    _save(run, manifest)
    assert expected in audit(manifest, get_datafolder(str(run)))
    with pytest.raises(AuroraError, match="invalid manifest: " + expected.replace("[", r"\[").replace("]", r"\]")):
        load_manifest(str(run))
    with pytest.raises(AuroraError):
        write_report([str(run)], str(tmp_path / "report"))


# --- an index that matches its checksum but not itself ---------------------------------------------

def _edit_index(run: Path, manifest: dict, edit) -> None:
    """Apply `edit` to shard 0's lengths, pointers and document indices, and record the new index's sha256."""
    idx = (run / manifest["shards"][0]["prefix"]).with_suffix(".idx")
    data = bytearray(idx.read_bytes())
    n = manifest["shards"][0]["documents"]
    header = 34
    lengths = np.frombuffer(data, np.int32, n, header).copy()
    pointers = np.frombuffer(data, np.int64, n, header + 4 * n).copy()
    document_indices = np.frombuffer(data, np.int64, n + 1, header + 12 * n).copy()
    edit(lengths, pointers, document_indices)
    data[header:] = lengths.tobytes() + pointers.tobytes() + document_indices.tobytes()
    idx.write_bytes(bytes(data))
    manifest["shards"][0]["idx_sha256"] = _sha(idx)
    _save(run, manifest)


def _swap_pointers(lengths, pointers, document_indices):
    # Documents 0 and 1 read each other's bytes: lengths, token count and .bin size are unchanged.
    pointers[[0, 1]] = pointers[[1, 0]]


def _shift_document_indices(lengths, pointers, document_indices):
    document_indices[1:] += 1


def _negative_length(lengths, pointers, document_indices):
    lengths[1] = -lengths[1]


@pytest.mark.parametrize("edit, expected", [
    (_swap_pointers, "2 pointers are not the running sum of the document lengths"),
    (_shift_document_indices, "document indices are not 0..3"),
    (_negative_length, "1 documents have a negative length"),
])
def test_index_altered_with_its_sha256_updated(pool, edit, expected):
    run, manifest = pool
    _edit_index(run, manifest, edit)
    problems = audit(*load_manifest(str(run)))
    assert f"{manifest['shards'][0]['prefix']}.idx: {expected}" in problems, problems
    assert not any("sha256" in p for p in problems), problems  # only the structural check can see it


# --- files missing, truncated or of another kind: problems and exit 1 -------------------------------

def test_cli_audit_of_a_truncated_bin(pool):
    run, manifest = pool
    shard = (run / manifest["shards"][1]["prefix"]).with_suffix(".bin")
    shard.write_bytes(shard.read_bytes()[:-2])
    result = _cli("manifest", "audit", str(run))
    assert result.returncode == 1 and "Traceback" not in result.stderr and result.stderr == ""
    lines = result.stdout.strip().splitlines()
    assert any(line.endswith(".bin: 6 bytes, the index implies 8") for line in lines), lines
    assert any("sha256 differs" in line for line in lines), lines


@pytest.mark.parametrize("damage, expected", [
    ("idx_missing", "missing file"),
    ("idx_is_text", "bytes, an index of 3 documents has"),  # its size tells it is no index, before any read
    ("bin_is_a_folder", "cannot be read"),
    ("rejects_not_gzip", "rejects/: a file cannot be read as rejects"),
])
def test_cli_audit_of_missing_and_foreign_files(pool, damage, expected):
    run, manifest = pool
    shard = run / manifest["shards"][0]["prefix"]
    if damage == "idx_missing":
        shard.with_suffix(".idx").unlink()
    elif damage == "idx_is_text":
        shard.with_suffix(".idx").write_text("not an index, but of the same length as one....")
    elif damage == "bin_is_a_folder":
        shard.with_suffix(".bin").unlink()
        shard.with_suffix(".bin").mkdir()
    else:
        (run / "rejects" / "language").mkdir(parents=True)
        (run / "rejects" / "language" / "00000.jsonl.gz").write_text('{"reason": "language"}\n')
    result = _cli("manifest", "audit", str(run))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert any(expected in line for line in result.stdout.splitlines()), result.stdout


REJECT = b'{"id":"d9","reason":"wrong_language","text":"Hei maailma, tama on suomea."}\n'


def _with_rejects(run: Path, manifest: dict) -> Path:
    """The pool with one removed document in rejects/language/, as curation writes and records it:
    counted in the funnel, the file's sha256 in the manifest's `rejects`."""
    path = run / "rejects" / "language" / "00000.jsonl.gz"
    path.parent.mkdir(parents=True)
    path.write_bytes(gzip.compress(REJECT, mtime=0))
    manifest["funnel"]["documents_in"] += 1
    manifest["funnel"]["removed"] = {"wrong_language": 1}
    manifest["rejects"] = [{"path": "rejects/language/00000.jsonl.gz", "sha256": _sha(path)}]
    _save(run, manifest)
    return path


@pytest.mark.parametrize("damage, expected", [
    # the same reason and count, so the funnel still balances: only the checksum sees it
    ("text_edited", "rejects/language/00000.jsonl.gz: sha256 differs from the manifest"),
    ("unlisted_file", "rejects/language/00001.jsonl.gz: a rejects file the manifest does not list"),
    ("file_missing", "rejects/language/00000.jsonl.gz: missing file"),
    ("foreign_name", "rejects/language/evil.jsonl.gz: not a rejects file of a run"),
])
def test_rejects_are_checked_against_their_sha256(pool, damage, expected):
    run, manifest = pool
    path = _with_rejects(run, manifest)
    assert audit(*load_manifest(str(run))) == []
    if damage == "text_edited":
        path.write_bytes(gzip.compress(REJECT.replace(b"suomea", b"ruotsia"), mtime=0))
    elif damage == "unlisted_file":
        path.with_name("00001.jsonl.gz").write_bytes(gzip.compress(b"", mtime=0))  # no reject: the counts hold
    elif damage == "file_missing":
        path.unlink()
    else:
        path.rename(path.with_name("evil.jsonl.gz"))
    problems = audit(*load_manifest(str(run)))
    assert any(expected in problem for problem in problems), problems


def test_report_of_a_pool_with_a_missing_index_is_one_error(pool, tmp_path):
    run, manifest = pool
    (run / manifest["shards"][0]["prefix"]).with_suffix(".idx").unlink()
    with pytest.raises(AuroraError, match="missing file"):
        write_report([str(run)], str(tmp_path / "report"))


# --- a stage's lineage naming documents that do not exist ---------------------------------------------

@pytest.mark.parametrize("row, expected", [
    ((3, 0, 0), "1 rows name no document of their component's pool"),
    ((0, 9, 0), "1 rows name no document of their component's pool"),
    ((0, 0, 99), "1 rows name no document of their component's pool"),
    ((0, 0, -1), "1 rows name no document of their component's pool"),
])
def test_lineage_outside_its_pool_is_a_problem(stage, row, expected):
    folder, manifest = stage
    path = folder / manifest["shards"][0]["lineage"]["path"]
    rows = list(zip(*pq.read_table(path).to_pydict().values()))
    rows[0] = row
    _write_lineage(path, rows)
    manifest["shards"][0]["lineage"]["sha256"] = file_sha256(path.open("rb"))
    _save(folder, manifest)
    assert audit(*load_manifest(str(folder))) == [f"{manifest['shards'][0]['lineage']['path']}: {expected}"]


def test_lineage_of_another_kind_is_a_problem(stage):
    folder, manifest = stage
    path = folder / manifest["shards"][0]["lineage"]["path"]
    path.write_text("component,pool_shard,document\n0,0,0\n")
    problems = audit(*load_manifest(str(folder)))
    assert problems[0] == f"{manifest['shards'][0]['lineage']['path']}: sha256 differs from the manifest"
    assert problems[1].startswith(f"{manifest['shards'][0]['lineage']['path']}: not a lineage file"), problems


@pytest.mark.parametrize("ext", [".idx", ".bin"])
def test_stage_whose_pool_shard_is_missing(stage, ext):
    folder, manifest = stage
    prefix = manifest["components"][0]["pool"]["shards"][1]
    (folder / "sources" / "web" / prefix).with_suffix(ext).unlink()
    problems = audit(*load_manifest(str(folder)))
    assert len(problems) == 1 and problems[0].startswith(f"component web: pool shard {prefix}{ext}: missing file"), problems
