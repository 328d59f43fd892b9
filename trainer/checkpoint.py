"""Checkpoints: the model in Hugging Face format plus the trainer's state, written atomically.

`<output>/checkpoints/step_<n>/` holds `model/` (config.json, model.safetensors, tokenizer.json:
`AutoModelForCausalLM.from_pretrained` loads it) and `trainer.pt` (optimizer, scheduler, step,
samples consumed, tokens per language, RNG states of every process). It is written as
`step_<n>.tmp` and renamed when complete; `latest` names the newest. With FSDP the full model and
optimizer state are gathered to the first process, which writes them.
"""

import os
import random
import shutil

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_optimizer_state_dict,
)

FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def rng_state() -> dict:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
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
        torch.save({"optimizer": optimizer_state, "scheduler": scheduler.state_dict(), "rng": rngs, **state},
                   os.path.join(tmp, "trainer.pt"))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        with open(os.path.join(output, "checkpoints", "latest.tmp"), "w") as f:
            f.write(os.path.basename(final) + "\n")
        os.replace(os.path.join(output, "checkpoints", "latest.tmp"), os.path.join(output, "checkpoints", "latest"))
    dist.barrier()
    return final


def latest(output: str) -> str | None:
    path = os.path.join(output, "checkpoints", "latest")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return os.path.join(output, "checkpoints", f.read().strip())


def load_trainer_state(checkpoint: str, model, optimizer, scheduler) -> dict:
    """Restores optimizer, scheduler and this process's RNG; returns the rest of the state."""
    state = torch.load(os.path.join(checkpoint, "trainer.pt"), weights_only=False)
    set_optimizer_state_dict(model, optimizer, state.pop("optimizer"), options=StateDictOptions(full_state_dict=True))
    scheduler.load_state_dict(state.pop("scheduler"))
    set_rng_state(state.pop("rng")[dist.get_rank()])
    return state
