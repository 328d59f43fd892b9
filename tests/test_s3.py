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
