"""End to end on the demo data: raw records -> shards and manifests, checked with megatron-core's reader."""

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import curate_demo, demo_records, run_cli, tree_bytes
from megatron.core.datasets.indexed_dataset import IndexedDataset
from tokenizers import Tokenizer

from aurora.cli import main
from core.text import normalize
from filters.pii import redact
from manifests.audit import audit
from manifests.manifest import load_manifest

ALL = ("en", "fi", "hi", "ja", "vi", "code")


def _run_dir(workspace, lang) -> Path:
    return workspace / "out" / "demo" / lang


def _input_records(workspace, lang):
    """(id, normalized text) of every well-formed record, in the order the tasks read them."""
    records = []
    for record in demo_records(workspace, lang):
        if isinstance(record.get("text"), str) and record["text"].strip():
            # Code is kept as it is, but for the PII the demo recipe redacts.
            text = redact(record["text"])[0] if lang == "code" else normalize(record["text"])
            records.append((record["id"], text))
    return records


def _rejected_ids(run_dir: Path, steps: str = "*") -> set:
    return {json.loads(line)["id"] for p in run_dir.glob(f"rejects/{steps}/*.jsonl.gz") for line in gzip.open(p)}


def _filtered_ids(run_dir: Path) -> set:
    """Documents removed before dedup."""
    return {i for step in run_dir.glob("rejects/*") if step.name != "dedup" for i in _rejected_ids(run_dir, step.name)}


@pytest.mark.parametrize("lang", ALL)
def test_megatron_reads_every_shard_with_manifest_counts(workspace, demo_runs, lang):
    manifest = demo_runs[lang]
    assert manifest["shards"], "every demo language keeps documents"
    for shard in manifest["shards"]:
        dataset = IndexedDataset(str(_run_dir(workspace, lang) / shard["prefix"]))
        assert len(dataset) == shard["documents"]
        assert int(dataset.sequence_lengths.sum()) == shard["tokens"]
        assert dataset[0].dtype == np.uint16  # the demo vocabulary fits
    assert manifest["totals"]["tokens"] == sum(s["tokens"] for s in manifest["shards"])


@pytest.mark.parametrize("lang", ALL)
def test_detokenized_shards_give_back_the_kept_text(workspace, demo_runs, lang):
    run_dir = _run_dir(workspace, lang)
    rejected = _rejected_ids(run_dir)
    kept = [text for doc_id, text in _input_records(workspace, lang) if doc_id not in rejected]
    tokenizer = Tokenizer.from_file(str(workspace / "assets" / "tokenizer.json"))
    decoded = []
    for shard in demo_runs[lang]["shards"]:
        dataset = IndexedDataset(str(run_dir / shard["prefix"]))
        for i in range(len(dataset)):
            tokens = dataset[i].tolist()
            assert tokens[-1] == 0 and 0 not in tokens[:-1]  # exactly one EOD, at the end
            decoded.append(tokenizer.decode(tokens[:-1], skip_special_tokens=False))
    assert decoded == kept


@pytest.mark.parametrize("lang", ALL)
def test_funnel_balances_exactly(workspace, demo_runs, lang):
    funnel = demo_runs[lang]["funnel"]
    lines = sum(1 for p in (workspace / "data" / "demo" / lang).glob("*.jsonl.gz") for line in gzip.open(p) if line.strip())
    assert funnel["documents_in"] == lines
    assert funnel["documents_in"] == funnel["kept"] + sum(funnel["malformed"].values()) + sum(funnel["removed"].values())
    assert set(funnel["malformed"]) == {"broken_json", "invalid_utf8", "missing_text", "text_not_string", "empty_text"}


def test_code_pii_is_redacted_and_counted(workspace, demo_runs):
    manifest = demo_runs["code"]
    assert manifest["redactions"]["email"] > 0  # the standard library names its authors
    tokenizer = Tokenizer.from_file(str(workspace / "assets" / "tokenizer.json"))
    dataset = IndexedDataset(str(_run_dir(workspace, "code") / manifest["shards"][0]["prefix"]))
    texts = [tokenizer.decode(dataset[i].tolist()[:-1]) for i in range(len(dataset))]
    assert not any("@python.org" in t for t in texts)


def test_junk_is_removed_and_clean_text_kept(workspace, demo_runs):
    for lang in ("en", "fi", "hi", "ja", "vi"):
        rejected = _filtered_ids(_run_dir(workspace, lang))
        labels = {r["id"]: r["label"] for r in demo_records(workspace, lang) if "label" in r}
        clean = [i for i, label in labels.items() if label == "clean"]
        assert sum(i not in rejected for i in clean) / len(clean) >= 0.98, lang  # dedup may drop a clean copy
        for kind in ("boilerplate", "number_table", "too_short", "wrong_language", "symbol_soup", "keyword_spam",
                     "repeated_sentence", "mojibake"):
            ids = [i for i, label in labels.items() if label == kind]
            assert all(i in rejected for i in ids), (lang, kind)


@pytest.mark.parametrize("workers", [1, 4])
def test_same_run_twice_and_with_other_worker_counts_is_byte_identical(in_workspace, demo_runs, tmp_path, workers):
    curate_demo("fi", tmp_path / "again", workers=workers)
    assert (tmp_path / "again" / "clusters.parquet").exists()
    assert tree_bytes(tmp_path / "again") == tree_bytes(_run_dir(in_workspace, "fi"))


def test_duplicates_are_removed_and_first_copies_kept(workspace, demo_runs):
    import pyarrow.parquet as pq

    for lang in ("en", "fi", "hi", "ja", "vi", "code"):
        run = _run_dir(workspace, lang)
        labels = {r["id"]: r["label"] for r in demo_records(workspace, lang) if "label" in r}
        removed = {}
        for path in (run / "rejects" / "dedup").glob("*.jsonl.gz"):
            for line in gzip.open(path):
                record = json.loads(line)
                removed[record["id"]] = record
        assert all(r["reason"] in ("exact_duplicate", "near_duplicate") for r in removed.values())
        # Of the documents that pass the filters, one copy of each text is kept (the generator's
        # copies may come before their originals), and the planted near duplicates are clustered.
        filtered = _filtered_ids(run)
        passed = [r for r in demo_records(workspace, lang) if isinstance(r.get("text"), str) and r["text"] and r["id"] not in filtered]
        texts = [r["text"] if lang == "code" else normalize(r["text"]) for r in passed]
        assert sum(r["reason"] == "exact_duplicate" for r in removed.values()) == len(texts) - len(set(texts))
        table = pq.read_table(run / "clusters.parquet").to_pylist()
        planted = [i for i, label in labels.items() if label == "near_duplicate" and i not in filtered]
        clustered = {row["id"] for row in table}
        assert sum(i in clustered for i in planted) >= 0.95 * len(planted), lang
        # A removed copy points at a kept document of its cluster, and clusters.parquet agrees.
        kept = {row["id"] for row in table if row["kept"]}
        assert {row["id"] for row in table if not row["kept"]} == set(removed)
        assert all(record["metadata"]["cluster_id"] in kept for record in removed.values())
        manifest = json.loads((run / "manifest.json").read_text())
        assert manifest["dedup"]["clusters"] == len(kept)
        for reason in ("exact_duplicate", "near_duplicate"):
            assert manifest["funnel"]["removed"].get(reason, 0) == sum(r["reason"] == reason for r in removed.values())


def test_ray_executor_matches_local(in_workspace, demo_runs, tmp_path):
    import ray

    try:
        curate_demo("fi", tmp_path / "ray", executor="ray", workers=2)
    finally:
        ray.shutdown()
    assert tree_bytes(tmp_path / "ray") == tree_bytes(_run_dir(in_workspace, "fi"))


def test_shards_are_capped(in_workspace, demo_runs, tmp_path):
    recipe = (in_workspace / "recipes/demo/vi.yaml").read_text().replace("max_shard_tokens: 200000", "max_shard_tokens: 20000")
    (tmp_path / "vi.yaml").write_text(recipe)
    from pipeline.curate import curate
    from pipeline.recipe import load_recipe

    manifest = curate(load_recipe(str(tmp_path / "vi.yaml")), output=str(tmp_path / "out"), workers=2)
    assert len(manifest["shards"]) > len(demo_runs["vi"]["shards"])
    assert all(s["tokens"] <= 20000 for s in manifest["shards"])
    assert manifest["totals"] == demo_runs["vi"]["totals"]


def _audit_lines(path, capsys):
    code = main(["manifest", "audit", str(path)])
    return code, capsys.readouterr().out.strip().splitlines()


def test_audit_passes_on_a_good_run(workspace, demo_runs, capsys):
    for lang in ALL:
        code, lines = _audit_lines(_run_dir(workspace, lang) / "manifest.json", capsys)
        assert code == 0 and lines[-1].endswith("tokens)") and ": OK (" in lines[-1]


@pytest.mark.parametrize("damage", ["flip_byte", "truncate_bin", "missing_shard", "edit_count", "lose_rejects", "edit_clusters"])
def test_audit_catches_damage(workspace, demo_runs, tmp_path, capsys, damage):
    run = tmp_path / "fi"
    shutil.copytree(_run_dir(workspace, "fi"), run)
    shard = run / demo_runs["fi"]["shards"][1]["prefix"]
    if damage == "flip_byte":
        data = bytearray(shard.with_suffix(".bin").read_bytes())
        data[len(data) // 2] ^= 0x01
        shard.with_suffix(".bin").write_bytes(bytes(data))
        expected = "sha256 differs"
    elif damage == "truncate_bin":
        data = shard.with_suffix(".bin").read_bytes()
        shard.with_suffix(".bin").write_bytes(data[:-10])
        expected = "the index implies"
    elif damage == "missing_shard":
        shard.with_suffix(".idx").unlink()
        expected = "missing file"
    elif damage == "edit_count":
        manifest = json.loads((run / "manifest.json").read_text())
        manifest["shards"][0]["tokens"] += 1
        (run / "manifest.json").write_text(json.dumps(manifest))
        expected = "tokens in the index, manifest says"
    elif damage == "lose_rejects":
        next(run.glob("rejects/language/*.jsonl.gz")).unlink()
        expected = "rejects/ holds"
    else:  # a removed duplicate marked kept
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pq.read_table(run / "clusters.parquet")
        kept = table.column("kept").to_pylist()
        kept[kept.index(False)] = True
        pq.write_table(table.set_column(3, "kept", pa.array(kept)), run / "clusters.parquet")
        expected = "clusters.parquet: sha256 differs"
    code, lines = _audit_lines(run, capsys)
    assert code == 1
    assert any(expected in line for line in lines), lines


@pytest.mark.parametrize("stage", ["filter", "tokenize"])
def test_killed_run_resumes_to_the_same_result(in_workspace, demo_runs, tmp_path, stage):
    # Sixteen input files (four copies of the demo's four) so the run has many tasks to kill; the
    # copies are exact duplicates, so dedup removes three of every four kept documents.
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for copy in range(4):
        for path in sorted((in_workspace / "data/demo/fi").glob("*.jsonl.gz")):
            shutil.copy(path, inputs / f"c{copy}-{path.name}")
    arguments = ["curate", "recipes/demo/fi.yaml", "--input", str(inputs / "*.jsonl.gz"), "--workers", "1"]
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "aurora.cli", *arguments, "--output", str(killed)], start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    completions = killed / "logs" / stage / "completions"
    deadline = time.time() + 180
    while time.time() < deadline and len(list(completions.glob("*"))) < 3:
        time.sleep(0.01)
    os.killpg(process.pid, signal.SIGKILL)  # the whole run: the CLI and the processes it started
    process.wait()
    done = len(list(completions.glob("*")))
    assert 3 <= done < 16, f"the kill should land mid-run ({done} of 16 tasks done)"
    assert not (killed / "manifest.json").exists()

    run_cli(*arguments, "--output", str(killed))
    run_cli(*arguments, "--output", str(tmp_path / "whole"))
    assert tree_bytes(killed) == tree_bytes(tmp_path / "whole")
    assert load_manifest(str(killed))[0]["funnel"] == load_manifest(str(tmp_path / "whole"))[0]["funnel"]
    assert audit(*load_manifest(str(killed))) == []


def test_rerun_into_a_folder_of_another_run_is_refused(in_workspace, demo_runs, capsys):
    code = main(["curate", "recipes/demo/en.yaml", "--output", str(_run_dir(in_workspace, "fi"))])
    assert code == 2
    assert "holds a run of another recipe" in capsys.readouterr().err
