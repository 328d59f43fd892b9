"""s3:// input and output through s3fs, against a real S3 endpoint (moto's server) on 127.0.0.1."""

import json

from conftest import curate_demo, run_cli, tree_bytes


def test_s3_input_and_output(in_workspace, s3, tmp_path, capsys):
    for path in sorted((in_workspace / "data/demo/fi").glob("*.jsonl.gz")):
        s3.put(str(path), f"raw/fi/{path.name}")
    # A user's process: the AWS_* variables set above reach it and its worker processes.
    run_cli("curate", "recipes/demo/fi.yaml", "--input", "s3://raw/fi/*.jsonl.gz", "--output", "s3://pools/fi", "--workers", "2")
    manifest = json.loads(s3.cat("pools/fi/manifest.json"))
    local = curate_demo("fi", tmp_path / "local", inputs=["data/demo/fi/*.jsonl.gz"], workers=2)
    assert [i["path"] for i in manifest["inputs"]] == [f"s3://raw/fi/part-{i:05d}.jsonl.gz" for i in range(4)]
    assert manifest["shards"] == local["shards"] and manifest["funnel"] == local["funnel"]

    s3.get("pools/fi/", str(tmp_path / "from_s3"), recursive=True)
    from_s3, from_disk = tree_bytes(tmp_path / "from_s3"), tree_bytes(tmp_path / "local")
    assert from_s3.keys() == from_disk.keys()
    assert all(from_s3[k] == from_disk[k] for k in from_s3 if k.startswith("shards/"))  # manifests differ in input paths

    from aurora.cli import main

    capsys.readouterr()
    assert main(["manifest", "audit", "s3://pools/fi/manifest.json"]) == 0
    assert "OK (" in capsys.readouterr().out
    # A damaged object in the bucket is caught like a damaged local file.
    s3.pipe(f"pools/fi/{manifest['shards'][0]['prefix']}.bin", b"\x00\x01")
    assert main(["manifest", "audit", "s3://pools/fi"]) == 1
    assert "sha256 differs" in capsys.readouterr().out


def test_s3_assets_are_fetched_once_into_a_cache_checked_against_assets_json(in_workspace, s3, tmp_path, monkeypatch, capsys):
    import pytest

    from aurora.cli import main
    from core.errors import AuroraError
    from core.storage import local_asset

    monkeypatch.setenv("AURORA_ASSET_CACHE", str(tmp_path / "cache"))
    s3.mkdir("assets")
    for name in ("lid.176.ftz", "tokenizer.json", "assets.json"):
        s3.put(str(in_workspace / "assets" / name), f"assets/models/{name}" if name != "assets.json" else f"assets/{name}")
    # The nearest assets.json above names files by their path below it.
    record = json.loads((in_workspace / "assets/assets.json").read_text())
    record["files"] = {f"models/{k}": v for k, v in record["files"].items()}
    s3.pipe("assets/assets.json", json.dumps(record).encode())

    local = local_asset("s3://assets/models/lid.176.ftz")
    assert local.startswith(str(tmp_path / "cache")) and open(local, "rb").read() == (in_workspace / "assets/lid.176.ftz").read_bytes()
    s3.pipe("assets/models/lid.176.ftz", b"changed in place")  # without a new sha256 in assets.json
    assert local_asset("s3://assets/models/lid.176.ftz") == local  # the cache holds the bytes assets.json names, nothing else
    monkeypatch.setenv("AURORA_ASSET_CACHE", str(tmp_path / "other-node"))
    with pytest.raises(AuroraError, match=r"sha256 [0-9a-f]{64} differs from"):
        local_asset("s3://assets/models/lid.176.ftz")
    assert not any(p.is_file() for p in (tmp_path / "other-node").rglob("*"))  # nothing unverified is left behind
    s3.pipe("raw/model.bin", b"x")
    with pytest.raises(AuroraError, match="no assets.json with its sha256"):
        local_asset("s3://raw/model.bin")
    with pytest.raises(AuroraError, match="not found"):
        local_asset("s3://assets/models/absent.bin")
    s3.pipe("assets/models/classifier/config.json", b"{}")  # a transformers model folder: its files are not fetched one by one
    with pytest.raises(AuroraError, match="is a folder: only files are fetched from object storage"):
        local_asset("s3://assets/models/classifier")

    # A run whose asset is damaged stops before any work, in one line.
    recipe = tmp_path / "fi.yaml"
    recipe.write_text((in_workspace / "recipes/demo/fi.yaml").read_text().replace("assets/lid.176.ftz", "s3://assets/models/lid.176.ftz"))
    capsys.readouterr()
    assert main(["curate", str(recipe), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aurora: error: asset s3://assets/models/lid.176.ftz: sha256") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
