"""The training runner on CPU: CAP then CAT on the demo stages, exact resume, FSDP on two
processes, checkpoints that transformers loads, tokens per language, config errors."""

import json
import math
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from core.errors import AuroraError
from pipeline.mix import load_stage_recipe, mix
from trainer.config import load_config

SMALL = """name: {name}
stage: out/demo/{name}
init: {init}
output: {output}
seed: 5
sequence_length: 64
global_batch_tokens: 512
micro_batch_size: 2
steps: {steps}
learning_rate: 3.0e-3
min_learning_rate: 3.0e-4
warmup_steps: 1
checkpoint_every: {every}
validation_sequences: 4
"""


@pytest.fixture(scope="module")
def stages(workspace, demo_runs):
    """The demo's CAP and CAT stages, mixed as `make demo` does."""
    cwd = os.getcwd()
    os.chdir(workspace)
    try:
        for stage in ("cap", "cat"):
            if not (workspace / "out" / "demo" / stage / "manifest.json").exists():
                mix(load_stage_recipe(f"recipes/demo/{stage}.yaml"), workers=2)
    finally:
        os.chdir(cwd)
    return workspace


@pytest.fixture(scope="module")
def process_group():
    """megatron's dataset builder runs inside a process group, as in the trainer."""
    import torch.distributed as dist

    from trainer.train import setup_distributed

    setup_distributed()
    yield
    dist.destroy_process_group()


def _config(tmp_path, name="cap", init="assets/tiny-gpt-bigcode", steps=4, every=2, output=None, **changes) -> Path:
    text = SMALL.format(name=name, init=init, steps=steps, every=every, output=output or tmp_path / f"run-{name}")
    for key, value in changes.items():
        if f"\n{key}:" not in text:  # a key SMALL leaves at its default
            text += f"{key}: {value}\n"
        text = "\n".join(f"{key}: {value}" if line.startswith(f"{key}:") else line for line in text.splitlines()) + "\n"
    path = tmp_path / f"{name}-{len(list(tmp_path.glob('*.yaml')))}.yaml"
    path.write_text(text)
    return path


def _train(workspace, config: Path, processes: int = 1) -> subprocess.CompletedProcess:
    if processes == 1:
        command = [sys.executable, "-m", "trainer", str(config)]
    else:
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
                   "-m", "trainer", str(config)]
    result = subprocess.run(command, cwd=workspace, capture_output=True, timeout=600)  # bytes: text mode reads \r as \n
    return subprocess.CompletedProcess(command, result.returncode, result.stdout.decode(), result.stderr.decode())


def _losses(output: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (output / "train.jsonl").read_text().splitlines()]


def test_cap_then_cat_run_end_to_end_and_the_model_loads_and_generates(stages, tmp_path):
    cap = _train(stages, _config(tmp_path, steps=6, every=3))
    assert cap.returncode == 0, cap.stderr[-3000:]
    final = tmp_path / "run-cap" / "final"
    cat = _train(stages, _config(tmp_path, name="cat", init=final, steps=3, every=3))
    assert cat.returncode == 0, cat.stderr[-3000:]
    assert "stage cat: 3 steps" in cat.stdout and "val loss start" in cat.stdout
    for run in ("run-cap", "run-cat"):
        out = tmp_path / run
        records = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
        assert {"loss", "lr", "grad_norm", "tokens_per_s", "tokens"} <= set(records[-1])
        validation = json.loads((out / "validation.json").read_text())
        assert set(validation) == {"start", "end"} and "code" in validation["start"]  # the forgetting check
        assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (out / "summary.txt").exists()
    # CAT started from CAP's final weights with a fresh optimizer: its first learning rate is its own warm-up's.
    cat_first = json.loads((tmp_path / "run-cat" / "train.jsonl").read_text().splitlines()[0])
    assert cat_first["lr"] == pytest.approx(3.0e-3)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "run-cat" / "final")
    generated = model.generate(torch.tensor([[1, 2, 3]]), max_new_tokens=5, do_sample=False)
    assert generated.shape == (1, 8)


def test_loss_falls_on_a_small_repeated_batch(stages, process_group):
    from trainer.config import load_config
    from trainer.data import StageData
    from trainer.train import load_model, token_losses

    torch.manual_seed(0)
    manifest = json.loads((stages / "out/demo/cap/manifest.json").read_text())
    data = StageData(manifest, str(stages / "out/demo/cap"), 64, 5, 8, str(stages / "out/demo/cap-cache"))
    batch, _ = data.batch(list(range(4)))
    config = load_config(str(stages / "recipes/demo/train-cap.yaml"))
    model = load_model(str(stages / "assets/tiny-gpt-bigcode"), config, torch.device("cpu"), world=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = token_losses(model, batch[:, :-1], batch[:, 1:]) / batch[:, 1:].numel()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_a_killed_run_resumes_to_the_same_losses(stages, tmp_path):
    whole = _train(stages, _config(tmp_path, steps=8, every=3, output=tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr[-3000:]
    killed = tmp_path / "killed"
    config = _config(tmp_path, steps=8, every=3, output=killed)
    process = subprocess.Popen([sys.executable, "-m", "trainer", str(config)], cwd=stages, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    # `latest`, not the step folder: it is written just after the rename, and a kill between the two resumes nothing.
    while time.time() < deadline and not (killed / "checkpoints" / "latest").exists():
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert not (killed / "final").exists(), "the kill should land mid-run"
    resumed = _train(stages, config)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout
    assert _losses(killed) == pytest.approx(_losses(tmp_path / "whole"), abs=1e-6)


def test_two_processes_with_fsdp_give_the_losses_of_one(stages, tmp_path):
    one = _train(stages, _config(tmp_path, output=tmp_path / "one"))
    two = _train(stages, _config(tmp_path, output=tmp_path / "two"), processes=2)
    assert one.returncode == 0, one.stderr[-3000:]
    assert two.returncode == 0, two.stderr[-3000:]
    assert "2 process(es) on CPU, FSDP" in two.stdout
    assert _losses(tmp_path / "two") == pytest.approx(_losses(tmp_path / "one"), abs=1e-4)


def test_tokens_per_language_follow_the_manifest_shares(stages, process_group):
    from trainer.data import StageData

    manifest = json.loads((stages / "out/demo/cap/manifest.json").read_text())
    samples = 4000
    data = StageData(manifest, str(stages / "out/demo/cap"), 128, 5, samples, str(stages / "out/demo/cap-cache"))
    _, counts = data.batch(list(range(samples)))
    total = sum(counts.values())
    planned = {}
    for c in manifest["components"]:
        planned[c["language"]] = planned.get(c["language"], 0) + c["share"]
    assert total == samples * 128
    for language, share in planned.items():
        assert abs(counts[language] / total - share) < 0.02, (language, counts[language] / total, share)


@pytest.mark.parametrize("change, message", [
    ({"stage": "out/demo/nowhere"}, "no stage manifest at out/demo/nowhere"),
    ({"sequence_length": 1024, "global_batch_tokens": 2048}, "sequence_length 1024 is above the model's 512 positions"),
    ("other_tokenizer", "made with another tokenizer than the model's"),
    ({"steps": "many"}, "'steps' must be int, got 'many'"),
])
def test_config_errors_are_one_line_before_any_work(stages, tmp_path, change, message):
    init = "assets/tiny-gpt-bigcode"
    if change == "other_tokenizer":
        init = tmp_path / "model"
        shutil.copytree(stages / "assets/tiny-gpt-bigcode", init)
        tokenizer = json.loads((init / "tokenizer.json").read_text())
        tokenizer["model"]["merges"] = tokenizer["model"]["merges"][:-1]
        (init / "tokenizer.json").write_text(json.dumps(tokenizer))
        change = {}
    result = _train(stages, _config(tmp_path, init=init, output=tmp_path / "out", **change))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("aurora: error:"), result.stderr[-2000:]
    assert not (tmp_path / "out").exists()


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    # What a terminal shows: of each line, what the last carriage return leaves (a progress bar redraws itself).
    lines = [line.split("\r")[-1] for line in result.stderr.split("\n") if line.split("\r")[-1].strip()]
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("aurora: error:"), result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("key, value, message", [
    ("min_learning_rate", -1, "'min_learning_rate' must be between 0 and learning_rate (0.003), got -1"),
    ("min_learning_rate", 0.01, "'min_learning_rate' must be between 0 and learning_rate (0.003), got 0.01"),
    ("learning_rate", 0, "'learning_rate' must be above 0, got 0"),
    ("learning_rate", -1, "'learning_rate' must be above 0, got -1"),
    ("learning_rate", ".nan", "'learning_rate' must be a finite number, got nan"),
    ("weight_decay", ".inf", "'weight_decay' must be a finite number, got inf"),
    ("weight_decay", -0.1, "'weight_decay' must be at least 0, got -0.1"),
    ("beta1", 1.5, "'beta1' must be at least 0 and below 1, got 1.5"),
    ("beta2", 1.0, "'beta2' must be at least 0 and below 1, got 1.0"),
    ("grad_clip", 0, "'grad_clip' must be above 0, got 0"),
    ("warmup_steps", -1, "'warmup_steps' must be between 0 and steps (4), got -1"),
    ("warmup_steps", 5, "'warmup_steps' must be between 0 and steps (4), got 5"),
    ("seed", -1, "'seed' must be between 0 and 2**32 - 1, got -1"),
])
def test_out_of_range_config_values_are_refused(tmp_path, key, value, message):
    config = _config(tmp_path, output=tmp_path / "out", **{key: value})
    with pytest.raises(AuroraError) as error:
        load_config(str(config))
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("key, value", [("min_learning_rate", -1), ("learning_rate", ".nan")])
def test_out_of_range_config_values_are_one_line_cli_errors(tmp_path, key, value):
    # Run where there is no stage or model at all: the range checks come before every other check and any work.
    config = _config(tmp_path, output=tmp_path / "out", **{key: value})
    result = subprocess.run([sys.executable, "-m", "aurora.cli", "train", str(config)], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert f"'{key}' must be" in _one_error_line(result)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["../../elsewhere", "absolute", "linked", "step_0000009", "step_1"])
def test_a_latest_naming_anything_but_a_checkpoint_of_the_run_is_refused(stages, tmp_path, name):
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(stages / "assets/tiny-gpt-bigcode", elsewhere / "model")
    checkpoints = tmp_path / "out" / "checkpoints"
    checkpoints.mkdir(parents=True)
    if name == "absolute":
        name = str(elsewhere)
    elif name == "linked":  # the right form of name, but a link out of the run
        name = "step_0000001"
        (checkpoints / name).symlink_to(elsewhere)
    (checkpoints / "latest").write_text(name + "\n")
    result = _train(stages, _config(tmp_path, output=tmp_path / "out"))
    assert "not a step_NNNNNNN checkpoint folder in" in _one_error_line(result)
    assert not (tmp_path / "out" / "cache").exists(), "refused before any work"


class _CreatesFile:
    """Unpickled, this calls open(path, "w"): any code a crafted checkpoint chooses would run the same way."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


@pytest.fixture(scope="module")
def checkpointed(stages, tmp_path_factory):
    """An uninterrupted 2-process run of 8 steps, checkpointed at steps 4 and 8."""
    tmp_path = tmp_path_factory.mktemp("checkpointed")
    result = _train(stages, _config(tmp_path, steps=8, every=4, output=tmp_path / "whole"), processes=2)
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp_path / "whole"


@pytest.fixture(scope="module")
def checkpointed_one(stages, tmp_path_factory):
    """The same run on one process."""
    tmp_path = tmp_path_factory.mktemp("checkpointed_one")
    result = _train(stages, _config(tmp_path, steps=8, every=4, output=tmp_path / "whole"))
    assert result.returncode == 0, result.stderr[-3000:]
    return tmp_path / "whole"


def _at_step_4(run: Path, output: Path) -> Path:
    """A copy of `run` as a run killed after its step-4 checkpoint leaves it."""
    shutil.copytree(run, output)
    shutil.rmtree(output / "checkpoints" / "step_0000008")
    shutil.rmtree(output / "final")
    (output / "checkpoints" / "latest").write_text("step_0000004\n")
    return output


def test_a_checkpoint_is_one_shard_per_process_and_nothing_that_unpickles(checkpointed):
    step = checkpointed / "checkpoints" / "step_0000004"
    assert sorted(p.name for p in (step / "state").iterdir()) == [
        "shard-00001-model-00001-of-00001.safetensors", "shard-00002-model-00001-of-00001.safetensors"]
    assert sorted(p.name for p in (step / "rng").iterdir()) == ["rank_00000.json", "rank_00001.json"]
    assert {"config.json", "tokenizer.json", "trainer.json"} <= {p.name for p in step.iterdir()}
    from safetensors import safe_open

    sizes = []
    for shard in sorted((step / "state").iterdir()):
        with safe_open(str(shard), "pt") as f:
            sizes.append(sum(f.get_slice(k).get_shape()[0] for k in f.keys() if k.endswith("c_attn.weight")))
            assert "DCP_SHARDING_INFO" in f.metadata()
    assert sizes[0] == sizes[1] > 0, "each process wrote half of each sharded tensor"
    assert not list(checkpointed.rglob("*.pt")) and not list(checkpointed.rglob("*.metadata"))


@pytest.mark.parametrize("processes", [1, 4])
def test_a_checkpoint_of_two_processes_resumes_on_another_number_to_the_same_losses(stages, checkpointed, tmp_path, processes):
    run = _at_step_4(checkpointed, tmp_path / "resumed")
    config = _config(tmp_path, steps=8, every=4, output=run)
    result = _train(stages, config, processes=processes)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "resumed from" in result.stdout and "written by 2 processes: resharded" in result.stdout
    losses = _losses(run)
    assert len(losses) == 8 and losses == pytest.approx(_losses(checkpointed), abs=1e-4)


def test_the_export_loads_in_transformers_with_the_trained_models_logits(stages, checkpointed, tmp_path):
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import HuggingFaceStorageReader
    from transformers import AutoModelForCausalLM

    run = tmp_path / "run"
    shutil.copytree(checkpointed, run)
    result = subprocess.run([sys.executable, "-m", "aurora.cli", "train", "export", str(run), "--step", "4"],
                            cwd=stages, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    exported = run / "exports" / "step_0000004"
    assert str(exported) in result.stdout
    assert {"config.json", "tokenizer.json", "model.safetensors.index.json", "model-00001-of-00001.safetensors"} == \
        {p.name for p in exported.iterdir()}
    # The trained model: the step-4 shards read by DCP itself into the starting model, in one process.
    trained = AutoModelForCausalLM.from_pretrained(stages / "assets/tiny-gpt-bigcode")
    state = {k: v for k, v in trained.state_dict().items() if k != "lm_head.weight"}  # tied to wte: stored once
    dcp.load(state, storage_reader=HuggingFaceStorageReader(str(run / "checkpoints/step_0000004/state")), no_dist=True)
    start = AutoModelForCausalLM.from_pretrained(stages / "assets/tiny-gpt-bigcode")
    model = AutoModelForCausalLM.from_pretrained(exported)
    inputs = torch.arange(1, 33).unsqueeze(0)
    with torch.no_grad():
        logits = model(inputs).logits
        assert torch.equal(logits, trained(inputs).logits)
        assert not torch.allclose(logits, start(inputs).logits), "the export is the trained model, not the start"
    # The stage's final/ is the last checkpoint's export.
    final = AutoModelForCausalLM.from_pretrained(run / "final")
    last = subprocess.run([sys.executable, "-m", "aurora.cli", "train", "export", str(run)],
                          cwd=stages, capture_output=True, text=True, timeout=300)
    assert last.returncode == 0, last.stderr[-3000:]
    with torch.no_grad():
        assert torch.equal(final(inputs).logits, AutoModelForCausalLM.from_pretrained(run / "exports/step_0000008")(inputs).logits)


def test_the_export_streams_tensor_by_tensor_into_files_of_bounded_size(checkpointed, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    from trainer import export

    monkeypatch.setattr(export, "FILE_BYTES", 100_000)  # the tiny model's 2.6 MB over many files
    out = export.export(str(checkpointed / "checkpoints" / "step_0000008"), str(tmp_path / "model"))
    index = json.loads((tmp_path / "model" / "model.safetensors.index.json").read_text())
    from safetensors import safe_open

    files = sorted(set(index["weight_map"].values()))
    assert len(files) >= 5
    for name in files:
        with safe_open(str(tmp_path / "model" / name), "pt") as f:
            sizes = [f.get_slice(k).get_shape() for k in f.keys()]
        data = sum(math.prod(shape) * 4 for shape in sizes)
        assert data <= 100_000 or len(sizes) == 1, (name, sizes)  # a tensor larger than a file has one to itself
    whole = AutoModelForCausalLM.from_pretrained(checkpointed / "final")
    split = AutoModelForCausalLM.from_pretrained(out)
    assert all(torch.equal(a, b) for a, b in zip(whole.state_dict().values(), split.state_dict().values()))


SHARD = "state/shard-00001-model-00001-of-00001.safetensors"


def _rehash(step: Path) -> None:
    """trainer.json's sha256 of every file made to match the files as they are now: a crafted
    checkpoint, which the checks after the checksums must catch."""
    import hashlib

    trainer = json.loads((step / "trainer.json").read_text())
    trainer["files"] = {name: hashlib.sha256((step / name).read_bytes()).hexdigest() for name in trainer["files"]}
    (step / "trainer.json").write_text(json.dumps(trainer))


def _rewrite_shard(step: Path, change) -> None:
    """The shard rewritten with its tensors and header metadata passed through `change(tensors, sharding)`."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    with safe_open(str(step / SHARD), "pt") as f:
        tensors, metadata = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
    sharding = json.loads(metadata["DCP_SHARDING_INFO"])
    change(tensors, sharding)
    save_file(tensors, str(step / SHARD), metadata | {"DCP_SHARDING_INFO": json.dumps(sharding)})


def _damage(step: Path, damage: str, tmp_path: Path) -> None:
    """One way of damaging or crafting the one-process checkpoint `step`."""
    marker = tmp_path / "marker"
    weight = "transformer.h.0.attn.c_attn.weight"
    if damage == "crafted_pickles":  # what torch.save and DCP's default layout would read: never opened
        (step / "trainer.json").unlink()
        torch.save({"step": 4, "optimizer": _CreatesFile(marker)}, step / "trainer.pt")
        (step / "state" / ".metadata").write_bytes(pickle.dumps(_CreatesFile(marker)))
    elif damage == "trainer_json_junk":
        (step / "trainer.json").write_bytes(b"\x80\x04junk{")
    elif damage == "trainer_json_types":
        trainer = json.loads((step / "trainer.json").read_text())
        name = next(k for k in trainer["param_groups"] if k.endswith(".lr"))
        trainer["param_groups"][name] = "__import__('os')"
        (step / "trainer.json").write_text(json.dumps(trainer))
    elif damage == "truncated_shard":
        (step / SHARD).write_bytes((step / SHARD).read_bytes()[: (step / SHARD).stat().st_size // 2])
    elif damage == "missing_shard":
        (step / SHARD).unlink()
    elif damage == "nan_bytes":  # 64 bytes of a weight set to 0xFF: NaNs
        data = bytearray((step / SHARD).read_bytes())
        header_size = int.from_bytes(data[:8], "little")
        start = json.loads(data[8:8 + header_size])[weight]["data_offsets"][0] + 8 + header_size
        data[start:start + 64] = b"\xff" * 64
        (step / SHARD).write_bytes(bytes(data))
    elif damage == "nan_bytes_rehashed":
        _damage(step, "nan_bytes", tmp_path)
        _rehash(step)
    elif damage == "extra_file":
        (step / "state" / "notes.txt").write_text("x")
    elif damage == "state_link":  # the same files, but through a link to a folder outside the run
        shutil.move(step / "state", tmp_path / "state-elsewhere")
        (step / "state").symlink_to(tmp_path / "state-elsewhere")
    elif damage == "rng_junk":
        (step / "rng" / "rank_00000.json").write_text(json.dumps({"python": "x"}))
        _rehash(step)
    elif damage == "offsets":  # a crafted offset: DCP would size the tensor by it
        _rewrite_shard(step, lambda tensors, sharding: sharding[weight].update(saved_offsets=[100_000, 0]))
        _rehash(step)
    elif damage == "weight_removed":
        _rewrite_shard(step, lambda tensors, sharding: (tensors.pop(weight), sharding.pop(weight)))
        _rehash(step)
    else:  # another shape in the header, the same bytes
        _rewrite_shard(step, lambda tensors, sharding: tensors.update({weight: tensors[weight].reshape(64, -1)}))
        _rehash(step)


DAMAGES = {
    "crafted_pickles": "trainer.json: not a checkpoint file written by aurora train",
    "trainer_json_junk": "trainer.json: not a checkpoint file written by aurora train",
    "truncated_shard": f"{SHARD} is not the file it wrote (its sha256 differs",
    "missing_shard": f"{SHARD} is missing",
    "nan_bytes": f"{SHARD} is not the file it wrote (its sha256 differs",
    "extra_file": "state/notes.txt is not a file it wrote",
    "state_link": "state is a link",
    "nan_bytes_rehashed": "holds values that are not finite",
    "offsets": "transformer.h.0.attn.c_attn.weight has the shape [100096, 64] where the model has [96, 64]",
    "weight_removed": "tensors missing (transformer.h.0.attn.c_attn.weight first)",
    "other_shape": "transformer.h.0.attn.c_attn.weight has the shape [64, 96] where the model has [96, 64]",
}


@pytest.mark.parametrize("damage, message", list(DAMAGES.items()) + [
    ("trainer_json_types", "param_groups"),
    ("rng_junk", "rank_00000.json: not what this trainer writes there"),
])
def test_a_damaged_or_crafted_checkpoint_is_refused_in_one_line_and_runs_nothing(stages, checkpointed_one, tmp_path, damage,
                                                                                 message):
    run = _at_step_4(checkpointed_one, tmp_path / "run")
    log = (run / "train.jsonl").read_bytes()
    _damage(run / "checkpoints" / "step_0000004", damage, tmp_path)
    result = _train(stages, _config(tmp_path, steps=8, every=4, output=run))
    line = _one_error_line(result)
    assert message in line, line
    assert not (tmp_path / "marker").exists() and not (run / "final").exists()
    assert (run / "train.jsonl").read_bytes() == log, "refused before any work"


@pytest.mark.parametrize("damage, message", list(DAMAGES.items()) + [("step_link", "no checkpoint of step 4")])
def test_export_refuses_what_resume_refuses(stages, checkpointed_one, tmp_path, damage, message):
    run = tmp_path / "run"
    shutil.copytree(checkpointed_one, run)
    step = run / "checkpoints" / "step_0000004"
    if damage == "step_link":  # the step's folder a link to a checkpoint outside the run
        shutil.move(step, tmp_path / "elsewhere")
        step.symlink_to(tmp_path / "elsewhere")
    else:
        _damage(step, damage, tmp_path)
    result = subprocess.run([sys.executable, "-m", "aurora.cli", "train", "export", str(run), "--step", "4"],
                            cwd=stages, capture_output=True, text=True, timeout=300)
    line = _one_error_line(result)
    assert message in line, line
    assert not (run / "exports" / "step_0000004").exists() and not (tmp_path / "marker").exists()


def test_fuzzed_checkpoint_shards_are_refused_or_the_run_stays_finite(stages, checkpointed_one, tmp_path):
    """Bytes flipped in a checkpoint's shard, in its header or its tensors, with trainer.json's sha256
    made to match (a crafted checkpoint; without that the checksum refuses every one): resume and
    export each end in one line, or run on with finite values."""
    import random
    from collections import Counter

    rng, outcomes = random.Random(26), Counter()
    for case in range(4):
        run = _at_step_4(checkpointed_one, tmp_path / f"run{case}")
        step = run / "checkpoints" / "step_0000004"
        data = bytearray((step / SHARD).read_bytes())
        header_end = 8 + int.from_bytes(data[:8], "little")
        region = (8, header_end) if case % 2 == 0 else (header_end, len(data))
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(*region)] = rng.randrange(256)
        (step / SHARD).write_bytes(bytes(data))
        _rehash(step)
        exported = subprocess.run([sys.executable, "-m", "aurora.cli", "train", "export", str(run), "--step", "4"],
                                  cwd=stages, capture_output=True, text=True, timeout=300)
        if exported.returncode != 0:
            _one_error_line(exported)
        resumed = _train(stages, _config(tmp_path, steps=8, every=4, output=run))
        if resumed.returncode == 0:
            assert all(math.isfinite(loss) for loss in _losses(run))
        else:
            _one_error_line(resumed)
        outcomes["header" if case % 2 == 0 else "tensors", "resumed" if resumed.returncode == 0 else "refused"] += 1
    print(f"\nfuzz checkpoint shards: 4 crafted, each refused in one line or finite; {dict(sorted(outcomes.items()))}")


def test_a_resumed_run_refuses_a_changed_config_and_takes_the_documented_changes(stages, checkpointed_one, tmp_path):
    run = _at_step_4(checkpointed_one, tmp_path / "run")
    changed = _train(stages, _config(tmp_path, name="cat", steps=8, every=4, output=run, learning_rate="5.0e-2", seed=6))
    line = _one_error_line(changed)
    assert "learning_rate, name, seed, stage (its manifest) differ from the run it resumes" in line, line
    assert "may change only output, stage, checkpoint_every, micro_batch_size" in line
    # How the same steps are computed and kept may change: another micro-batch split, checkpoint interval.
    resumed = _train(stages, _config(tmp_path, steps=8, every=2, output=run, micro_batch_size=4))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert _losses(run) == pytest.approx(_losses(checkpointed_one), abs=1e-4)


def test_a_log_cut_in_its_last_line_resumes_and_the_start_validation_comes_from_the_checkpoint(stages, checkpointed_one,
                                                                                               tmp_path):
    run = _at_step_4(checkpointed_one, tmp_path / "run")
    with open(run / "train.jsonl", "a") as log:
        log.write('{"step": 5, "loss": 3.')  # a kill or a full disk in the middle of step 5's record
    (run / "validation.json").write_text('{"start": {"co')
    result = _train(stages, _config(tmp_path, steps=8, every=4, output=run))
    assert result.returncode == 0, result.stderr[-3000:]
    assert _losses(run) == pytest.approx(_losses(checkpointed_one), abs=1e-4)
    assert json.loads((run / "validation.json").read_text()) == json.loads((checkpointed_one / "validation.json").read_text())
    (run / "train.jsonl").write_text('{"step": 1}\nnot json\n')  # damage inside the log: not silently dropped
    assert "train.jsonl: line 2 is not a record of this log" in _one_error_line(_train(stages, _config(tmp_path, steps=8, every=4, output=run)))


def test_a_non_finite_loss_stops_the_run_in_one_line_and_exports_nothing(stages, tmp_path):
    result = _train(stages, _config(tmp_path, output=tmp_path / "out", learning_rate="1.0e+6", min_learning_rate=0))
    line = _one_error_line(result)
    assert "is not finite; stopped before the optimizer took it" in line and line.startswith("aurora: error: step ")
    assert not (tmp_path / "out" / "final").exists()
    records = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert all(math.isfinite(r["loss"]) and math.isfinite(r["grad_norm"]) for r in records)


@pytest.mark.parametrize("content, message", [
    (b"{not json", "config.json: not a model config"),
    (b"[1, 2]", "config.json: not a model config"),
    (b'{"n_positions": 512}', "'vocab_size' must be a positive integer, got 'None'"),
])
def test_an_init_model_config_of_another_shape_is_one_line(stages, tmp_path, content, message):
    init = tmp_path / "model"
    shutil.copytree(stages / "assets/tiny-gpt-bigcode", init)
    (init / "config.json").write_bytes(content)
    line = _one_error_line(_train(stages, _config(tmp_path, init=init, output=tmp_path / "out")))
    assert message in line, line


def test_compile_compiles_each_block_and_gives_the_same_losses(stages, checkpointed_one, tmp_path, process_group):
    from trainer.train import load_model

    config = load_config(str(_config(tmp_path, steps=8, every=4, output=tmp_path / "compiled", compile="true")))
    model = load_model(str(stages / "assets/tiny-gpt-bigcode"), config, torch.device("cpu"), world=1)
    assert all(block._compiled_call_impl is not None for block in model.transformer.h)
    assert model._compiled_call_impl is None  # blocks only, in place: parameter names unchanged
    assert "transformer.h.0.attn.c_attn.weight" in dict(model.named_parameters())
    result = _train(stages, _config(tmp_path, steps=8, every=4, output=tmp_path / "compiled", compile="true"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert _losses(tmp_path / "compiled") == pytest.approx(_losses(checkpointed_one), abs=1e-4)


def test_gpus_get_bf16_parameters_with_float32_reduction_and_cpus_float32(tmp_path):
    from trainer.train import mixed_precision

    config = load_config(str(_config(tmp_path)))
    policy = mixed_precision(torch.device("cuda", 0), config)
    assert (policy.param_dtype, policy.reduce_dtype) == (torch.bfloat16, torch.float32)
    assert mixed_precision(torch.device("cpu"), config) is None
    config.bf16 = False
    assert mixed_precision(torch.device("cuda", 0), config) is None
