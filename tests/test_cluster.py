"""The product on a real cluster: two Ray nodes on loopback (a head and a second `ray start`) with a
moto S3 server as the only shared storage, everything through s3:// (inputs, assets, pools, stage).

The nodes start without the S3 settings, as on a cluster whose nodes hold no user's credentials:
only the driver has `AWS_*`, and Ray's runtime_env carries them and the project's code to the
workers. Assets are read from the bucket into each node's cache (checked against assets.json)."""

import ast
import ctypes
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from conftest import free_port

RAY = str(Path(sys.executable).parent / "ray")
ROOT = Path(__file__).resolve().parents[1]
# On each node: where the project's code was imported from, and whether the S3 settings are there.
PROBE = """
import os, ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from run.executors import runtime_env
def where():
    import dedup, pipeline.curate
    return pipeline.curate.__file__, dedup.__file__, os.environ.get("AWS_ACCESS_KEY_ID")
ray.init(runtime_env=runtime_env(), logging_level="ERROR")
nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
pinned = [ray.remote(where).options(scheduling_strategy=NodeAffinitySchedulingStrategy(n, soft=False)) for n in nodes]
print(repr(ray.get([task.remote() for task in pinned])))
"""
ASSETS = ("lid.176.ftz", "fi.sp.model", "fi.arpa.bin", "quality/fi.ftz", "tokenizer.json", "assets.json")


class Cluster:
    def __init__(self, address: str, worker_port: int, node_env: dict):
        self.address, self.worker_port, self.node_env = address, worker_port, node_env

    def driver_env(self, cache: Path) -> dict:
        """The user's shell: the S3 settings, the cluster's address and token, a cache for assets."""
        auth = {k: self.node_env[k] for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
        return {**os.environ, **auth, "RAY_ADDRESS": self.address, "AURORA_ASSET_CACHE": str(cache)}

    def worker_raylet(self) -> int:
        found = subprocess.run(["pgrep", "-f", f"raylet.*--node_manager_port={self.worker_port}"], capture_output=True, text=True)
        pids = [int(p) for p in found.stdout.split()]
        assert len(pids) == 1, f"the worker node's raylet: {pids}"
        return pids[0]

    def task_running_on_worker_node(self) -> bool:
        """Whether a worker process of the second node is running one of our tasks (Ray titles it `ray::_run_rank`)."""
        children = subprocess.run(["pgrep", "-P", str(self.worker_raylet())], capture_output=True, text=True).stdout.split()
        for pid in children:
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::_run_rank"):
                    return True
            except OSError:
                pass
        return False

    def kill_worker_node(self) -> None:
        """SIGKILL the second node's raylet: its workers die with it, and the node is gone."""
        os.kill(self.worker_raylet(), 9)


@pytest.fixture
def cluster(s3):
    # Token authentication, as Ray now defaults to; without AWS_*: the driver alone has them.
    node_env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "RAY_", "AURORA_"))}
    node_env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths are limited in length
    port, worker_port = free_port(), free_port()
    start = [RAY, "start", "--node-ip-address=127.0.0.1", "--num-cpus=1", "--disable-usage-stats"]

    def ray_start(*args: str) -> None:
        result = subprocess.run(start + list(args), env=node_env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]

    try:
        ray_start("--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}")
        ray_start(f"--address=127.0.0.1:{port}", f"--node-manager-port={worker_port}")
        yield Cluster(f"127.0.0.1:{port}", worker_port, node_env)
    finally:
        subprocess.run([RAY, "stop", "--force"], env=node_env, capture_output=True)
        shutil.rmtree(temp, ignore_errors=True)


def _aurora(env: dict, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "aurora.cli", *args], env=env, capture_output=True, text=True, timeout=600)
    assert not check or result.returncode == 0, f"exit {result.returncode}: {result.stderr[-3000:]}"
    return result


def _objects(s3, prefix: str) -> dict[str, bytes]:
    """Every object under `prefix` but logs and run bookkeeping, by path below it."""
    paths = [p for p in s3.find(prefix) if "logs" not in p[len(prefix):].split("/")[:-1] and not p.endswith("pipeline.lock")]
    return {p[len(prefix):]: s3.cat(p) for p in paths}


def _publish(in_workspace, s3, tmp_path) -> Path:
    """Demo input, instruction records and assets into the bucket; the fi recipe naming them there."""
    for path in sorted((in_workspace / "data/demo/fi").glob("*.jsonl.gz")):
        s3.put(str(path), f"raw/fi/{path.name}")
    for path in sorted((in_workspace / "data/demo/instructions").glob("*.jsonl")):
        s3.put(str(path), f"raw/instructions/{path.name}")
    s3.mkdir("assets")
    for name in ASSETS:
        s3.put(str(in_workspace / "assets" / name), f"assets/{name}")
    text = (in_workspace / "recipes/demo/fi.yaml").read_text().replace("data/demo/fi/", "s3://raw/fi/")
    recipe = tmp_path / "fi.yaml"
    recipe.write_text(text.replace("assets/", "s3://assets/"))
    return recipe


def _stage_recipe(tmp_path, pool: str) -> Path:
    recipe = tmp_path / "cat.yaml"
    recipe.write_text(f"""name: cat
seed: 7
tokens: 60000
output: s3://pools/unused
tokenizer: s3://assets/tokenizer.json
parts: 2
max_shard_tokens: 20000
components:
  - {{name: fi, language: fi, pool: "{pool}", tokens: 0.8, max_epochs: 1}}
  - {{name: instructions, language: multi, instructions: "s3://raw/instructions/*.jsonl", tokens: 0.2, max_epochs: 8}}
""")
    return recipe


def test_two_node_cluster_through_s3_survives_a_lost_node(in_workspace, s3, cluster, tmp_path):
    recipe = _publish(in_workspace, s3, tmp_path)
    env = cluster.driver_env(tmp_path / "cache")
    local_env = {**env, "AURORA_ASSET_CACHE": str(tmp_path / "local-cache")}
    _aurora(local_env, "curate", str(recipe), "--output", "s3://pools/fi-local", "--workers", "2")

    # The code and the S3 settings reach the workers of both nodes through runtime_env.
    probe = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True)
    assert probe.returncode == 0, probe.stderr[-3000:]
    seen = ast.literal_eval(probe.stdout.strip().splitlines()[-1])
    assert len(seen) == 2
    for curate_file, dedup_file, key in seen:
        assert not curate_file.startswith(str(ROOT)) and not dedup_file.startswith(str(ROOT)) and key == "testing"
    _aurora(env, "curate", str(recipe), "--output", "s3://pools/fi", "--executor", "ray", "--workers", "2")
    assert _objects(s3, "pools/fi/") == _objects(s3, "pools/fi-local/")

    # A node lost mid-run: its tasks run again on the other node, and the run ends with the same bytes.
    run = subprocess.Popen([sys.executable, "-m", "aurora.cli", "curate", str(recipe), "--output", "s3://pools/fi-again",
                            "--executor", "ray", "--workers", "2"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while not cluster.task_running_on_worker_node() and run.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert run.poll() is None, "the run ended before a task ran on the second node"
    cluster.kill_worker_node()
    _, stderr = run.communicate(timeout=600)
    if run.returncode != 0:  # stopped in one line; a rerun resumes
        assert stderr.count("\n") <= 2 and "aurora: error:" in stderr, stderr[-3000:]
        _aurora(env, "curate", str(recipe), "--output", "s3://pools/fi-again", "--executor", "ray", "--workers", "2")
    assert _objects(s3, "pools/fi-again/") == _objects(s3, "pools/fi-local/")

    # A stage with an instruction component, mixed and audited entirely in the bucket.
    stage = _stage_recipe(tmp_path, "s3://pools/fi")
    _aurora(local_env, "mix", str(stage), "--output", "s3://pools/cat-local", "--workers", "2")
    _aurora(env, "mix", str(stage), "--output", "s3://pools/cat", "--executor", "ray", "--workers", "2")
    assert _objects(s3, "pools/cat/") == _objects(s3, "pools/cat-local/")
    audited = _aurora(env, "manifest", "audit", "s3://pools/cat", "s3://pools/fi")
    assert audited.stdout.count("OK (") == 2, audited.stdout


@pytest.mark.parametrize("kind", ["local", "ray"])
def test_failed_tasks_stop_the_run_naming_them_and_their_logs_then_a_rerun_resumes(s3, tmp_path, kind):
    import ray

    from core.errors import AuroraError
    from run.executors import make_executor, run_pass

    ran = tmp_path / "ran"
    ran.mkdir()

    def step(fail_rank: int):
        def run(data, rank, world_size):
            (ran / f"{rank}-{fail_rank}").touch()
            if rank == fail_rank:
                raise ValueError(f"task {rank} breaks")
            return data or []
        return run

    logs = "s3://pools/logs/filter"
    try:
        with pytest.raises(AuroraError) as stopped:
            run_pass(make_executor(kind, [step(fail_rank=2)], 4, 2, logs), "filter", logs)
        message = str(stopped.value)
        incomplete = re.fullmatch(r"filter: \d of 4 tasks did not complete \(ranks ([\d, ]+)\) \(ValueError: task 2 breaks\); "
                                  rf"logs in {logs}/logs; run again to resume", message)
        assert incomplete, message
        incomplete = {int(r) for r in incomplete.group(1).split(", ")}
        assert 2 in incomplete and s3.exists("pools/logs/filter/logs/task_00002.log")
        run_pass(make_executor(kind, [step(fail_rank=-1)], 4, 2, logs), "filter", logs)  # the rerun runs those only
        assert {int(p.name.split("-")[0]) for p in ran.iterdir() if p.name.endswith("--1")} == incomplete
    finally:
        ray.shutdown()


def what_each_task_sees(kind: str, tmp_path, probe: str) -> list[str]:
    """Runs a pass of two tasks on the `kind` executor, each executing `probe` (code that sets
    `seen`); what each saw, sorted."""
    import ray

    from run.executors import make_executor, run_pass

    seen = tmp_path / "seen"
    seen.mkdir()

    def record(data, rank, world_size):
        scope: dict = {}
        exec(probe, scope)  # the test's own code
        (seen / str(rank)).write_text(str(scope["seen"]))
        return data or []

    logs = str(tmp_path / "logs")
    try:
        run_pass(make_executor(kind, [record], 2, 2, logs), "record", logs)
    finally:
        ray.shutdown()
    return sorted(p.read_text() for p in seen.iterdir())


@pytest.mark.parametrize("kind", ["local", "ray"])
def test_each_task_gives_the_tokenizer_its_share_of_the_cpus(monkeypatch, tmp_path, kind):
    """The tokenizer's thread pool (RAYON_NUM_THREADS) is sized to the task's CPUs: a local worker's
    share of this machine's, a Ray task's one."""
    monkeypatch.delenv("RAYON_NUM_THREADS", raising=False)
    seen = what_each_task_sees(kind, tmp_path, "import os; seen = os.environ.get('RAYON_NUM_THREADS', 'unset')")
    share = 1 if kind == "ray" else max(1, len(os.sched_getaffinity(0)) // 2)
    assert seen == [str(share)] * 2


# Whether malloc maps an 8 MiB block on its own after a 16 MiB mapped block was freed: glibc raises
# its threshold to 16 MiB then, unless it was fixed (`core.allocator.large_blocks_unmapped`), and
# takes the block from its heap (which has no free 8 MiB to give: it grows).
MAPPED_AFTER_A_LARGER_BLOCK_IS_FREED = """
import ctypes
class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, [ctypes.c_size_t], [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
libc.free(libc.malloc(16 << 20))
before = libc.mallinfo2().hblks
block = libc.malloc(8 << 20)
mapped = libc.mallinfo2().hblks > before
libc.free(block)
"""


@pytest.mark.skipif(not hasattr(ctypes.CDLL(None), "mallinfo2"), reason="glibc's malloc only")
@pytest.mark.parametrize("kind", ["local", "ray"])
def test_each_task_unmaps_the_large_blocks_it_frees(tmp_path, kind):
    """In a task, glibc's mmap threshold stays fixed: a large block freed goes back to the system
    instead of raising the threshold (a worker's memory grew with its task: core/allocator.py)."""
    assert what_each_task_sees(kind, tmp_path, MAPPED_AFTER_A_LARGER_BLOCK_IS_FREED + "seen = mapped") == ["True"] * 2
    probe = MAPPED_AFTER_A_LARGER_BLOCK_IS_FREED + "print(mapped)"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    unset = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
    assert unset.strip() == "False"  # glibc's own behaviour, which the tasks change


def test_the_code_sent_to_ray_workers_is_every_package_the_run_path_imports():
    """runtime_env ships the packages in PACKAGES to nodes that have no copy of the project: one
    the run path imports but PACKAGES lacks would fail on such a node only."""
    import tomllib

    from run.executors import PACKAGES, PRELOADED

    ours = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    modules = subprocess.run([sys.executable, "-c", f"import sys, {', '.join(PRELOADED)}, pipeline.refilter; print(' '.join(sys.modules))"],
                             cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    imported = {name.split(".")[0] for name in modules} & ours
    assert imported <= set(PACKAGES), sorted(imported - set(PACKAGES))


def test_an_unreachable_cluster_is_one_line_at_once(in_workspace, monkeypatch, tmp_path, capsys):
    from aurora.cli import main

    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{free_port()}")
    started = time.time()
    assert main(["curate", "recipes/demo/fi.yaml", "--output", str(tmp_path / "out"), "--executor", "ray"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("aurora: error: cannot reach the Ray cluster at RAY_ADDRESS=127.0.0.1:") and err.count("\n") == 1
    assert time.time() - started < 60


def test_start_executor_starts_the_local_fork_server_with_the_run_modules():
    """With workers, the local executor's fork server starts and imports the run's modules; with
    one worker, tasks run in the run's process and none starts."""
    probe = ("import sys; from multiprocess import forkserver; from run.executors import start_executor; "
             "start_executor('local', int(sys.argv[1])); pid = forkserver._forkserver._forkserver_pid; "
             "print(open(f'/proc/{pid}/cmdline').read() if pid else 'none')")
    started = subprocess.run([sys.executable, "-c", probe, "2"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "multiprocess.forkserver" in started and "'pipeline.passes'" in started
    alone = subprocess.run([sys.executable, "-c", probe, "1"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert alone.strip() == "none"


@pytest.mark.parametrize("named", [None, "mimalloc"])
def test_the_local_workers_take_arrows_buffers_from_the_c_allocator(named):
    """A pool worker of the local executor allocates Arrow's buffers with the C library's
    allocator (mimalloc, Arrow's own, kept what tasks had freed: README, "Throughput and cost"),
    unless the environment names a pool."""
    probe = ("import multiprocess; from run.executors import start_executor; start_executor('local', 2); "
             "pool = multiprocess.get_context('forkserver').Pool(1); "
             "print(pool.apply(lambda: __import__('pyarrow').default_memory_pool().backend_name)); pool.close()")
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"} | ({"ARROW_DEFAULT_MEMORY_POOL": named} if named else {})
    backend = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, check=True).stdout
    assert backend.strip() == (named or "system")


@pytest.mark.parametrize("command", ["curate", "refilter"])
def test_the_executor_starts_before_the_run_is_prepared(in_workspace, monkeypatch, tmp_path, command):
    """curate and refilter start the executor before they prepare the run (check its assets, list
    its inputs), so that its workers import while the run is prepared."""
    import pipeline.curate
    import pipeline.refilter
    from pipeline.recipe import load_recipe

    class Prepared(Exception):
        pass

    calls = []

    def prepare(*args, **kwargs):
        calls.append("prepare")
        raise Prepared

    module = getattr(pipeline, command)
    monkeypatch.setattr(module, "start_executor", lambda kind, workers, verbose=False: calls.append(f"start {kind} {workers}"))
    monkeypatch.setattr(module, "prepare", prepare)
    monkeypatch.setattr(pipeline.refilter, "load_manifest", lambda run: ({"signals": {}, "inputs": []}, None))
    recipe = load_recipe("recipes/demo/en.yaml")
    with pytest.raises(Prepared):
        if command == "curate":
            pipeline.curate.curate(recipe, output=str(tmp_path / "out"), workers=2)
        else:
            pipeline.refilter.refilter(recipe, str(tmp_path / "run"), output=str(tmp_path / "out"), workers=2)
    assert calls == ["start local 2", "prepare"]
