"""Checkpoints: every process writes its own shard of the model and optimizer state, in parallel; a
checkpoint resumes on any number of processes; nothing in one runs code when it loads.

`<output>/checkpoints/step_<n>/`:
- `state/`: the model's parameters under their Hugging Face names and the optimizer's state
  (`optimizer.state.<parameter>.<exp_avg|exp_avg_sq|step>`), written by `torch.distributed.checkpoint`
  (DCP) in its safetensors layout: process k writes `shard-<k>-model-00001-of-00001.safetensors`
  with its shard of each tensor and the shard's offsets in the file's header, tensor by tensor
  (`ShardWriter`: no copy of the process's state is made to write it). Loading reads the
  headers and the slices each process needs, so a checkpoint of N processes resumes on M (DCP
  reshards), and no pickle is read: DCP's default layout keeps its metadata as a pickle, this one
  does not. A weight tied to another (GPT-BigCode's `lm_head` to `wte`) is stored once.
- `trainer.json`: step, samples consumed, tokens per language, the scheduler's state, the
  optimizer's parameter groups (learning rate, betas, ...), the number of processes, the run
  (its config, its stage manifest's sha256, its start validation: what resume compares and
  reuses), and the sha256 of every other file of the checkpoint (`files`): resume and export
  refuse a checkpoint with a file changed, missing, added, or that is a link.
- `rng/rank_<r>.json`: each process's random generator states.
- `config.json` and `tokenizer.json` of the model, so that a checkpoint exports on its own
  (`trainer.export`).

Every process writes its part into `step_<n>.tmp/`; once all have, the first writes `trainer.json`
and renames the folder: a checkpoint is complete or absent. `latest` names the newest. A run on
several nodes needs `output` on a filesystem they all see. The JSON files are input like any
other: each value must have the type and shape the running trainer has for it.
"""

import hashlib
import json
import math
import os
import random
import re
import shutil
import stat
import struct
from collections import Counter

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import CheckpointException, HuggingFaceStorageReader, HuggingFaceStorageWriter
from torch.distributed.checkpoint._hf_utils import (
    CUSTOM_METADATA_KEY,
    DCP_VERSION_KEY,
    DTYPE_MAP,
    FORMAT_KEY,
    FORMAT_VALUE,
    HF_DCP_VERSION,
    SAVED_OFFSETS_KEY,
    _gen_file_name,
)
from torch.distributed.checkpoint.planner import WriteItemType
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict
from torch.distributed.checkpoint.storage import WriteResult
from torch.futures import Future

from core.atomic import LOCAL, write_atomic
from core.errors import AuroraError
from core.tokenizer import file_sha256

STATE = "state"  # the DCP folder in a checkpoint
OPTIMIZER = "optimizer."  # prefix of the optimizer's tensors in it
MODEL_FILES = ("config.json", "tokenizer.json")
OPTIONS = StateDictOptions(flatten_optimizer_state_dict=True)  # flat names: one tensor, one key
MAX_JSON_BYTES = 16 << 20


SAFETENSORS_DTYPES = {dtype: name for name, dtype in DTYPE_MAP.items()} | {torch.bool: "BOOL"}


class ShardWriter(HuggingFaceStorageWriter):
    """DCP's safetensors layout (`HuggingFaceStorageWriter(save_distributed=True)`: one file per
    process, each tensor's shard with its offsets in the header), written tensor by tensor: the
    header first (every shard's size is in the plan), then each shard's bytes straight from its
    memory. DCP's own writer builds the whole file in memory with `safetensors.torch.save` first,
    twice the process's share of the state at its peak (bench/checkpoint.py)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.written = {}  # {path in the checkpoint: sha256} of the file this process wrote, hashed as written

    def write_data(self, plan, planner) -> Future:
        done: Future = Future()
        if not plan.items:
            done.set_result([])
            return done
        name = _gen_file_name(1, 1, plan.storage_data["shard_index"])
        header, sharding, offset = {}, {}, 0
        for item in plan.items:
            if item.type == WriteItemType.BYTE_IO:  # save() passes tensors only
                raise TypeError(f"{item.index.fqn}: not a tensor")
            chunk, dtype = item.tensor_data.chunk, item.tensor_data.properties.dtype
            size = math.prod(chunk.sizes) * dtype.itemsize
            header[item.index.fqn] = {"dtype": SAFETENSORS_DTYPES[dtype], "shape": list(chunk.sizes),
                                      "data_offsets": [offset, offset + size]}
            sharding[item.index.fqn] = {SAVED_OFFSETS_KEY: list(chunk.offsets)}
            offset += size
        header["__metadata__"] = {CUSTOM_METADATA_KEY: json.dumps(sharding), DCP_VERSION_KEY: str(HF_DCP_VERSION),
                                  FORMAT_KEY: FORMAT_VALUE}
        encoded = json.dumps(header, separators=(",", ":")).encode()
        encoded += b" " * (-len(encoded) % 8)  # safetensors aligns the data to 8 bytes
        results, digest = [], hashlib.sha256()
        with open(os.path.join(self.path, name), "wb") as f:
            header = struct.pack("<Q", len(encoded)) + encoded
            f.write(header)
            digest.update(header)
            for item in plan.items:
                tensor = planner.resolve_data(item).detach().cpu().contiguous()
                data = tensor.reshape(-1).view(torch.uint8).numpy().data
                f.write(data)
                digest.update(data)
                results.append(WriteResult(index=item.index, size_in_bytes=tensor.nbytes, storage_data=None))
            f.flush()
            os.fsync(f.fileno())
        self.written[f"{STATE}/{name}"] = digest.hexdigest()
        done.set_result(results)
        return done


def rng_state() -> dict:
    """This process's random generators as JSON types."""
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {"python": [version, list(internal), gauss],
             "numpy": [kind, keys.tolist(), position, has_gauss, cached_gaussian],
             "torch": torch.get_rng_state().tolist()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state().tolist()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state:
        torch.cuda.set_rng_state(torch.tensor(state["cuda"], dtype=torch.uint8))


def reseed(seed: int, step: int, rank: int) -> None:
    """Fresh random streams for a process resuming on another number of processes than wrote the
    checkpoint (its streams belong to ranks that no longer exist): a function of seed, step, rank."""
    derived = int(np.random.SeedSequence([seed, step, rank]).generate_state(1)[0])
    random.seed(derived)
    np.random.seed(derived)
    torch.manual_seed(derived)  # CUDA's generators too


def _local(tensor: torch.Tensor) -> torch.Tensor:
    """This process's shard of a sharded tensor, or the tensor."""
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def _tied(model_state: dict) -> dict[str, str]:
    """{name: the earlier name whose storage it shares}: a tied weight, stored once."""
    first, tied = {}, {}
    for name, tensor in model_state.items():
        pointer = _local(tensor).untyped_storage().data_ptr()
        if pointer in first:
            tied[name] = first[pointer]
        else:
            first[pointer] = name
    return tied


def _split(model, optimizer) -> tuple[dict, dict, dict, dict]:
    """(tensors for DCP, model state, optimizer state, tied names), the tensors being this
    process's shards of the live parameters and optimizer state (DCP loads into them in place)."""
    model_state, optimizer_state = get_state_dict(model, optimizer, options=OPTIONS)
    tied = _tied(model_state)
    tensors = {name: t for name, t in model_state.items() if name not in tied}
    tensors |= {OPTIMIZER + name: v for name, v in optimizer_state.items() if isinstance(v, torch.Tensor)}
    return tensors, model_state, optimizer_state, tied


def save(output: str, step: int, model, optimizer, scheduler, state: dict, model_folder: str, run: dict) -> str:
    """Every process calls this and writes its shards; returns the checkpoint folder. `run`: the
    run's config, stage and start validation (`trainer.json`'s `run`)."""
    rank, world = dist.get_rank(), dist.get_world_size()
    final = os.path.join(output, "checkpoints", f"step_{step:07d}")
    tmp = final + ".tmp"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(os.path.join(tmp, "rng"))
    dist.barrier()
    tensors, _, optimizer_state, _ = _split(model, optimizer)
    writer = ShardWriter(os.path.join(tmp, STATE), save_distributed=True)
    dcp.save(tensors, storage_writer=writer)
    rng = json.dumps(rng_state()).encode()
    rng_name = f"rng/rank_{rank:05d}.json"
    with open(os.path.join(tmp, rng_name), "wb") as f:
        f.write(rng)
    written = [None] * world
    dist.all_gather_object(written, writer.written | {rng_name: hashlib.sha256(rng).hexdigest()})  # once all are written
    if rank == 0:
        files = {name: digest for part in written for name, digest in part.items()}
        for name in MODEL_FILES:
            if os.path.exists(os.path.join(model_folder, name)):
                shutil.copy(os.path.join(model_folder, name), os.path.join(tmp, name))
                files[name] = _sha256(os.path.join(tmp, name))
        groups = {name: v for name, v in optimizer_state.items() if not isinstance(v, torch.Tensor)}
        trainer = {"step": step, "samples": state["samples"], "tokens": dict(state["tokens"]), "world": world,
                   "scheduler": scheduler.state_dict(), "param_groups": groups, "run": run, "files": dict(sorted(files.items()))}
        with open(os.path.join(tmp, "trainer.json"), "w") as f:
            json.dump(trainer, f)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        write_atomic(LOCAL, os.path.join(output, "checkpoints", "latest"), (os.path.basename(final) + "\n").encode())
    dist.barrier()
    return final


def latest(output: str) -> str | None:
    """The checkpoint `latest` names. Only a name save writes, of a real folder beside it, is accepted:
    the file is input, and `../..`, an absolute path or a link would resume from outside the run."""
    folder = os.path.join(output, "checkpoints")
    path = os.path.join(folder, "latest")
    if not os.path.lexists(path):
        return None
    try:
        with open(path, errors="replace") as f:
            name = f.read(64).strip()  # bounded: `latest` may be a link to anything
    except OSError as e:
        raise AuroraError(f"cannot read {path}: {e.strerror}") from None
    checkpoint = step_folder(output, name)
    if checkpoint is None:
        raise AuroraError(f"{path} names {name[:32]!r}, not a step_NNNNNNN checkpoint folder in {folder}")
    return checkpoint


def step_folder(output: str, name: str) -> str | None:
    """`output/checkpoints/<name>` when it is a checkpoint's folder of that run: named as save names
    them, and a folder, not a link (neither it nor `checkpoints`), which would read from outside the run."""
    folder = os.path.join(output, "checkpoints")
    checkpoint = os.path.join(folder, name)
    if not re.fullmatch(r"step_\d{7}", name) or os.path.islink(folder) or os.path.islink(checkpoint) or not os.path.isdir(checkpoint):
        return None
    return checkpoint


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return file_sha256(f)


def file_problem(checkpoint: str, files: dict[str, str], rank: int = 0, world: int = 1) -> str | None:
    """Why the checkpoint's files are not those `files` lists ({path in it: sha256}, all but
    trainer.json), or None: a link, a file it does not list, one it lists missing, other bytes.
    Every process hashes its share (every world-th file from rank on): a checkpoint is read once."""
    found = set()
    for folder, dirs, names in os.walk(checkpoint):
        for name in dirs + names:
            path = os.path.join(folder, name)
            mode = os.lstat(path).st_mode
            if stat.S_ISLNK(mode):
                return f"{os.path.relpath(path, checkpoint)} is a link (a checkpoint holds its own files only)"
            if name in names and not stat.S_ISREG(mode):  # a FIFO would block the read, a device never end
                return f"{os.path.relpath(path, checkpoint)} is not a regular file"
            if name in names:
                found.add(os.path.relpath(path, checkpoint))
    found.discard("trainer.json")
    if found != set(files):
        extra, missing = sorted(found - set(files)), sorted(set(files) - found)
        return f"{extra[0]} is not a file it wrote" if extra else f"{missing[0]} is missing"
    for name in sorted(files)[rank::world]:
        if _sha256(os.path.join(checkpoint, name)) != files[name]:
            return f"{name} is not the file it wrote (its sha256 differs from trainer.json's)"
    return None


def _read_json(path: str):
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_JSON_BYTES + 1)
        if len(data) > MAX_JSON_BYTES:
            raise ValueError(f"larger than {MAX_JSON_BYTES >> 20} MiB")
        return json.loads(data)
    except (OSError, ValueError) as e:
        raise AuroraError(f"{path}: not a checkpoint file written by aurora train ({e})") from None


def _like(template, value, where: str):
    """`value` checked against the trainer's own `template`: the same keys, list lengths and types
    (a JSON list stands for a tuple, an integer for a float; None for an optional number, such as
    Python's cached Gaussian). Returns it with the template's types."""
    if isinstance(template, dict) and isinstance(value, dict) and set(template) == set(value):
        return {key: _like(template[key], value[key], f"{where}.{key}") for key in template}
    if isinstance(template, (list, tuple)) and isinstance(value, list) and len(value) == len(template):
        return type(template)(_like(t, v, f"{where}[{i}]") for i, (t, v) in enumerate(zip(template, value)))
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if (isinstance(template, (bool, str)) and type(value) is type(template)
            or isinstance(template, int) and not isinstance(template, bool) and number and isinstance(value, int)):
        return value
    if isinstance(template, float) and number:
        return float(value)
    if template is None and (value is None or number):
        return value
    raise AuroraError(f"{where}: not what this trainer writes there ({str(value)[:80]!r})")


def read_trainer(checkpoint: str) -> dict:
    """A checkpoint's `trainer.json`, its values checked for what the trainer writes there (those the
    running trainer has a template for are checked against it on load)."""
    path = os.path.join(checkpoint, "trainer.json")
    trainer = _read_json(path)
    if not isinstance(trainer, dict) or not {"step", "samples", "tokens", "world", "scheduler", "param_groups", "run",
                                             "files"} <= set(trainer):
        raise AuroraError(f"{path}: not a trainer state written by aurora train (keys missing)")
    for key in ("step", "samples", "world"):
        _like(0, trainer[key], f"{path}: {key}")
    tokens, run, files = trainer["tokens"], trainer["run"], trainer["files"]
    if not isinstance(tokens, dict) or not all(isinstance(n, int) and not isinstance(n, bool) for n in tokens.values()):
        raise AuroraError(f"{path}: tokens: not a count per language")
    if not _is_run(run):
        raise AuroraError(f"{path}: run: not the run's config, stage and start validation")
    if not isinstance(files, dict) or not all(isinstance(d, str) and re.fullmatch(r"[0-9a-f]{64}", d) for d in files.values()):
        raise AuroraError(f"{path}: files: not a sha256 per file")
    return trainer


def state_problem(stored: dict, expected: dict[str, tuple]) -> str | None:
    """Why the tensors of a checkpoint's state (`stored`: DCP's metadata of its shards' headers, by
    name) are not those `expected` ({name: shape}), or None: a tensor missing or extra, another shape,
    or shards that do not tile it exactly. The shards are slabs along the first dimension (FSDP's, or
    one whole tensor); DCP takes a tensor's shape from its shards' offsets, so a crafted offset would
    size it at will."""
    if set(stored) != set(expected):
        missing, extra = sorted(set(expected) - set(stored)), sorted(set(stored) - set(expected))
        return f"{len(missing)} tensors missing ({missing[0]} first)" if missing else f"{extra[0]} is not a tensor of this model"
    for name, shape in expected.items():
        tensor = stored[name]
        if tuple(tensor.size) != tuple(shape):
            return f"{name} has the shape {list(tensor.size)} where the model has {list(shape)}"
        if not _tiled(tensor.chunks, tuple(shape)):
            return f"{name}: its shards do not tile it"
    return None


def _tiled(chunks, shape: tuple) -> bool:
    """Whether the shards `chunks` (offsets, sizes) are slabs along the first dimension that cover
    `shape` once, end to end; empty shards (a process with no rows) may be anywhere."""
    if any(len(c.offsets) != len(shape) or len(c.sizes) != len(shape) for c in chunks):
        return False
    if not shape:  # a scalar, the optimizer's step: written whole
        return bool(chunks)
    end = 0
    for chunk in sorted((c for c in chunks if math.prod(c.sizes)), key=lambda c: c.offsets[0]):
        if chunk.offsets[0] != end or any(chunk.offsets[1:]) or tuple(chunk.sizes[1:]) != shape[1:]:
            return False
        end += chunk.sizes[0]
    return end == shape[0] or not math.prod(shape)


def _is_run(run) -> bool:
    """Whether `run` is what save keeps of the run: {"config": {...}, "stage": sha256, "validation":
    {"start": {language: loss}}}."""
    if not isinstance(run, dict) or set(run) != {"config", "stage", "validation"}:
        return False
    config, stage, validation = run["config"], run["stage"], run["validation"]
    start = validation.get("start") if isinstance(validation, dict) else None
    return (isinstance(config, dict) and isinstance(stage, str) and isinstance(start, dict)
            and all(isinstance(loss, float) for loss in start.values()))


def check_files(checkpoint: str, trainer: dict) -> None:
    """Refuse `checkpoint` if its files are not those its `trainer.json` (`trainer`) lists
    (`file_problem`); every process calls this, and hashes its share. A resume calls it before
    any work: the stage's data and the model are not built for a checkpoint that cannot be read."""
    rank, world = dist.get_rank(), dist.get_world_size()
    problems = [None] * world
    dist.all_gather_object(problems, file_problem(checkpoint, trainer["files"], rank, world))
    if any(problems):
        raise AuroraError(f"{checkpoint}: {next(p for p in problems if p)}")


def load(checkpoint: str, trainer: dict, model, optimizer, scheduler, seed: int) -> dict:
    """Restores model, optimizer, scheduler and random streams from `checkpoint`, whose `trainer.json`
    is `trainer` (`read_trainer`) and whose files `check_files` has checked; every process calls
    this. Returns the loop's state: step, samples, tokens."""
    rank, world = dist.get_rank(), dist.get_world_size()
    path = os.path.join(checkpoint, "trainer.json")
    step, samples, written_by, tokens = trainer["step"], trainer["samples"], trainer["world"], trainer["tokens"]

    tensors, model_state, optimizer_state, tied = _split(model, optimizer)
    folder = os.path.join(checkpoint, STATE)
    try:
        reader = HuggingFaceStorageReader(folder)
        problem = state_problem(reader.read_metadata().state_dict_metadata, {name: tuple(t.shape) for name, t in tensors.items()})
        if problem:
            raise ValueError(problem)
        dcp.load(tensors, storage_reader=reader)
    except (Exception, CheckpointException) as e:  # noqa: BLE001 - a missing, truncated or foreign shard: safetensors
        # and DCP raise many kinds, DCP each process's gathered into one (a BaseException, with tracebacks)
        if isinstance(e, CheckpointException):
            e = next(iter(e.failures.values()))[0]
        raise AuroraError(f"{folder}: not a complete checkpoint of this model ({type(e).__name__}: "
                          f"{' '.join(str(e).split())[:200]})") from None
    non_finite = [None] * world  # a crafted checkpoint, its sha256 in step: the first step's loss would be NaN
    dist.all_gather_object(non_finite, next((n for n, t in tensors.items() if not _local(t).isfinite().all()), None))
    if any(non_finite):
        raise AuroraError(f"{folder}: {next(n for n in non_finite if n)} holds values that are not finite")
    model_state = {name: tensors[tied.get(name, name)] for name in model_state}
    groups = _like({n: v for n, v in optimizer_state.items() if not isinstance(v, torch.Tensor)},
                   trainer["param_groups"], f"{path}: param_groups")
    optimizer_state = {name: tensors.get(OPTIMIZER + name, groups.get(name)) for name in optimizer_state}
    set_state_dict(model, optimizer, model_state_dict=model_state, optim_state_dict=optimizer_state, options=OPTIONS)
    scheduler.load_state_dict(_like(scheduler.state_dict(), trainer["scheduler"], f"{path}: scheduler"))
    if written_by == world:  # each process resumes its own random streams
        rng_path = os.path.join(checkpoint, "rng", f"rank_{rank:05d}.json")
        error = None
        try:
            set_rng_state(_like(rng_state(), _read_json(rng_path), rng_path))
        except AuroraError as e:
            error = str(e)
        except (ValueError, TypeError, RuntimeError, OverflowError) as e:  # values the generators refuse
            error = f"{rng_path}: not a random state ({e})"
        errors = [None] * world  # one process's bad file stops them all, not only itself
        dist.all_gather_object(errors, error)
        if any(errors):
            raise AuroraError(next(e for e in errors if e))
    else:
        reseed(seed, step, rank)
    return {"step": step, "samples": samples, "tokens": Counter(tokens), "written_by": written_by}
