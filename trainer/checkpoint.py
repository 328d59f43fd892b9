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
  optimizer's parameter groups (learning rate, betas, ...) and the number of processes.
- `rng/rank_<r>.json`: each process's random generator states.
- `config.json` and `tokenizer.json` of the model, so that a checkpoint exports on its own
  (`trainer.export`).

Every process writes its part into `step_<n>.tmp/`; once all have, the first writes `trainer.json`
and renames the folder: a checkpoint is complete or absent. `latest` names the newest. A run on
several nodes needs `output` on a filesystem they all see. The JSON files are input like any
other: each value must have the type and shape the running trainer has for it.
"""

import json
import math
import os
import random
import re
import shutil
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
        results = []
        with open(os.path.join(self.path, name), "wb") as f:
            f.write(struct.pack("<Q", len(encoded)) + encoded)
            for item in plan.items:
                tensor = planner.resolve_data(item).detach().cpu().contiguous()
                f.write(tensor.reshape(-1).view(torch.uint8).numpy().data)
                results.append(WriteResult(index=item.index, size_in_bytes=tensor.nbytes, storage_data=None))
            f.flush()
            os.fsync(f.fileno())
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


def _tied(model_state: dict) -> dict[str, str]:
    """{name: the earlier name whose storage it shares}: a tied weight, stored once."""
    first, tied = {}, {}
    for name, tensor in model_state.items():
        local = tensor.to_local() if hasattr(tensor, "to_local") else tensor
        pointer = local.untyped_storage().data_ptr()
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


def save(output: str, step: int, model, optimizer, scheduler, state: dict, model_folder: str) -> str:
    """Every process calls this and writes its shards; returns the checkpoint folder."""
    rank, world = dist.get_rank(), dist.get_world_size()
    final = os.path.join(output, "checkpoints", f"step_{step:07d}")
    tmp = final + ".tmp"
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(os.path.join(tmp, "rng"))
    dist.barrier()
    tensors, _, optimizer_state, _ = _split(model, optimizer)
    dcp.save(tensors, storage_writer=ShardWriter(os.path.join(tmp, STATE), save_distributed=True))
    with open(os.path.join(tmp, "rng", f"rank_{rank:05d}.json"), "w") as f:
        json.dump(rng_state(), f)
    dist.barrier()  # every process's part is written
    if rank == 0:
        groups = {name: v for name, v in optimizer_state.items() if not isinstance(v, torch.Tensor)}
        trainer = {"step": step, "samples": state["samples"], "tokens": dict(state["tokens"]), "world": world,
                   "scheduler": scheduler.state_dict(), "param_groups": groups}
        with open(os.path.join(tmp, "trainer.json"), "w") as f:
            json.dump(trainer, f)
        for name in MODEL_FILES:
            if os.path.exists(os.path.join(model_folder, name)):
                shutil.copy(os.path.join(model_folder, name), os.path.join(tmp, name))
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
    checkpoint = os.path.join(folder, name)
    if not re.fullmatch(r"step_\d{7}", name) or os.path.islink(checkpoint) or not os.path.isdir(checkpoint):
        raise AuroraError(f"{path} names {name[:32]!r}, not a step_NNNNNNN checkpoint folder in {folder}")
    return checkpoint


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


def load(checkpoint: str, model, optimizer, scheduler, seed: int) -> dict:
    """Restores model, optimizer, scheduler and random streams (every process calls this);
    returns the loop's state: step, samples, tokens."""
    rank, world = dist.get_rank(), dist.get_world_size()
    path = os.path.join(checkpoint, "trainer.json")
    trainer = _read_json(path)
    if not isinstance(trainer, dict) or not {"step", "samples", "tokens", "world", "scheduler", "param_groups"} <= set(trainer):
        raise AuroraError(f"{path}: not a trainer state written by aurora train (keys missing)")
    step, samples, written_by = (_like(0, trainer[k], f"{path}: {k}") for k in ("step", "samples", "world"))
    tokens = trainer["tokens"]
    if not isinstance(tokens, dict) or not all(isinstance(n, int) and not isinstance(n, bool) for n in tokens.values()):
        raise AuroraError(f"{path}: tokens: not a count per language")

    tensors, model_state, optimizer_state, tied = _split(model, optimizer)
    folder = os.path.join(checkpoint, STATE)
    try:
        reader = HuggingFaceStorageReader(folder)
        missing = sorted(set(tensors) - set(reader.read_metadata().state_dict_metadata))
        if missing:
            raise ValueError(f"{len(missing)} of {len(tensors)} tensors missing, {missing[0]} first")
        dcp.load(tensors, storage_reader=reader)
    except (Exception, CheckpointException) as e:  # noqa: BLE001 - a missing, truncated or foreign shard: safetensors
        # and DCP raise many kinds, DCP each process's gathered into one (a BaseException, with tracebacks)
        if isinstance(e, CheckpointException):
            e = next(iter(e.failures.values()))[0]
        raise AuroraError(f"{folder}: not a complete checkpoint of this model ({type(e).__name__}: "
                          f"{' '.join(str(e).split())[:200]})") from None
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
