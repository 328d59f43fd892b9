import gzip
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
LANGUAGES = ("en", "fi", "hi", "ja", "vi")


@pytest.fixture(scope="session")
def workspace(tmp_path_factory):
    """A project-like folder with built assets and generated demo input, as `make demo` lays them out."""
    from tooling.assets import build_assets
    from tooling.demo_data import write_demo_data

    root = tmp_path_factory.mktemp("workspace")
    # KenLM's tools are compiled once into the project's assets/kenlm and reused by every session.
    build_assets(str(root / "assets"), kenlm_cache=str(ROOT / "assets" / "kenlm"))
    write_demo_data(str(root / "data" / "demo"))
    shutil.copytree(ROOT / "recipes", root / "recipes")
    return root


@pytest.fixture(scope="session")
def demo_runs(workspace):
    """Every demo recipe, curated once with the local executor and 2 workers."""
    cwd = os.getcwd()
    os.chdir(workspace)
    try:
        return {lang: curate_demo(lang, workspace / "out" / "demo" / lang) for lang in LANGUAGES + ("code",)}
    finally:
        os.chdir(cwd)


@pytest.fixture
def in_workspace(workspace, monkeypatch):
    monkeypatch.chdir(workspace)
    return workspace


def corpus_sentences(language: str) -> list[str]:
    path = CORPUS / f"{language}.txt"
    if not path.exists():
        pytest.skip(f"{path} is absent (it is present in CI)")
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def demo_records(workspace, language: str) -> list[dict]:
    """The demo input's records that parse as JSON objects, in the order the tasks read them."""
    records = []
    for path in sorted((workspace / "data" / "demo" / language).glob("*.jsonl.gz")):
        for line in gzip.open(path):
            try:
                record = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if isinstance(record, dict):
                records.append(record)
    return records


def curate_demo(language: str, output, executor="local", workers=2, inputs=None):
    """Run one demo recipe from inside the workspace (the caller has chdir'ed there)."""
    from pipeline.curate import curate
    from pipeline.recipe import load_recipe

    return curate(load_recipe(f"recipes/demo/{language}.yaml"), inputs=inputs, output=str(output),
                  executor=executor, workers=workers)


def tree_bytes(folder) -> dict[str, bytes]:
    """Every shard, the manifest and the dedup clusters of a run, by relative path (logs and ledgers excluded)."""
    folder = Path(folder)
    files = sorted(folder.glob("shards/*")) + sorted(folder.glob("clusters.parquet")) + [folder / "manifest.json"]
    return {str(p.relative_to(folder)): p.read_bytes() for p in files}


os.environ.setdefault("RAY_DISABLE_IMPORT_WARNING", "1")


def run_cli(*args: str) -> None:
    """`python -m aurora.cli ARGS` in a process of its own; a failure shows the end of its stderr."""
    result = subprocess.run([sys.executable, "-m", "aurora.cli", *args], capture_output=True, text=True)
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr[-3000:]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3(monkeypatch):
    """A real S3 endpoint (moto's server) on 127.0.0.1, reached through s3fs; buckets raw and pools."""
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("moto server did not start")
            time.sleep(0.1)
    for key, value in {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    import s3fs
    from datatrove.io import DataFolder

    def forget_endpoints() -> None:  # fsspec keeps instances, with their endpoint, for equal arguments
        s3fs.S3FileSystem.clear_instance_cache()
        DataFolder.clear_instance_cache()

    forget_endpoints()
    fs = s3fs.S3FileSystem()
    fs.mkdir("raw")
    fs.mkdir("pools")
    yield fs
    server.terminate()
    server.wait()
    forget_endpoints()
