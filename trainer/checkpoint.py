"""Checkpoints: the model in Hugging Face format plus the trainer's state, written atomically.

`<output>/checkpoints/step_<n>/` holds `model/` (config.json, model.safetensors, tokenizer.json:
`AutoModelForCausalLM.from_pretrained` loads it) and `trainer.pt` (optimizer, scheduler, step,
samples consumed, tokens per language, RNG states of every process). It is written as
`step_<n>.tmp` and renamed when complete; `latest` names the newest. With FSDP the full model and
optimizer state are gathered to the first process, which writes them.

`trainer.pt` holds plain types only (tensors, numbers, strings, lists, dicts) and is read with
`torch.load(weights_only=True)`: a checkpoint is input like any other, and unpickling arbitrary
objects would run whatever code a crafted file carries.
"""

import os
import random
import re
import shutil
from collections import Counter

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)

from core.atomic import LOCAL, write_atomic
from core.errors import AuroraError

FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def rng_state() -> dict:
    """Plain types only: numpy's state is a tuple holding an ndarray, which weights_only refuses."""
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached_gaussian = np.random.get_state()
    state = {"python": [version, list(internal), gauss],
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, cached_gaussian],
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached_gaussian = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, cached_gaussian))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save(output: str, step: int, model, optimizer, scheduler, state: dict, tokenizer: str | None) -> str:
    """Every process calls this (FSDP gathers); the first writes. Returns the checkpoint folder."""
    rank = dist.get_rank()
    model_state = get_model_state_dict(model, options=FULL)
    optimizer_state = get_optimizer_state_dict(model, optimizer, options=FULL)
    rngs = [None] * dist.get_world_size()
    dist.all_gather_object(rngs, rng_state())
    final = os.path.join(output, "checkpoints", f"step_{step:07d}")
    if rank == 0:
        tmp = final + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(os.path.join(tmp, "model"), state_dict=model_state, safe_serialization=True)
        if tokenizer:
            shutil.copy(tokenizer, os.path.join(tmp, "model", "tokenizer.json"))
        torch.save({"optimizer": optimizer_state, "scheduler": scheduler.state_dict(), "rng": rngs, **state,
                    "tokens": dict(state["tokens"])},
                   os.path.join(tmp, "trainer.pt"))
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


def load_trainer_state(checkpoint: str, model, optimizer, scheduler) -> dict:
    """Restores optimizer, scheduler and this process's RNG; returns the rest of the state."""
    path = os.path.join(checkpoint, "trainer.pt")
    try:
        state = torch.load(path, weights_only=True)
    except Exception as e:  # a crafted pickle, a truncated or missing file: torch raises many kinds
        raise AuroraError(f"{path}: not a trainer state that loads safely ({type(e).__name__}); "
                          f"damaged, or not written by aurora train") from None
    if not isinstance(state, dict) or not {"optimizer", "scheduler", "rng", "step", "samples", "tokens"} <= set(state):
        raise AuroraError(f"{path}: not a trainer state written by aurora train (keys missing)")
    if len(state["rng"]) != dist.get_world_size():  # each process resumes its own random streams
        raise AuroraError(f"{checkpoint} was written by {len(state['rng'])} processes; resume it on as many "
                          f"(this run has {dist.get_world_size()})")
    set_optimizer_state_dict(model, optimizer, state.pop("optimizer"), options=StateDictOptions(full_state_dict=True))
    scheduler.load_state_dict(state.pop("scheduler"))
    set_rng_state(state.pop("rng")[dist.get_rank()])
    state["tokens"] = Counter(state["tokens"])
    return state
