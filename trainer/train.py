"""`aurora train CONFIG`: continual pre-training of a GPT-BigCode model on one stage's shards.

CAP starts from a Hugging Face checkpoint (StarCoderPlus; the demo's tiny stand-in); CAT starts
from CAP's final model with a fresh optimizer and its own schedule. One process runs as it is;
`torchrun` runs many, sharded with FSDP (`fully_shard`): NCCL on NVIDIA, RCCL on AMD (ROCm
builds of PyTorch use the same `torch.cuda` API and `nccl` backend name), gloo on CPU.

On GPUs the model is always sharded (FSDP2, also on one GPU) with bf16 parameters and compute
and float32 gradient reduction (`MixedPrecisionPolicy`), and AdamW is the fused kernel; CPUs run
in float32. `compile: true` compiles each transformer block with `torch.compile`.

The loop, top to bottom: AdamW; linear warm-up then cosine decay to a minimum learning rate;
gradient accumulation to a global batch given in tokens; gradient clipping. Every
`checkpoint_every` steps and at the end every process writes its shard of a checkpoint
(`trainer.checkpoint`), and the same command restarted resumes from the latest one, exactly, on
any number of processes. Validation loss per language (on the stage's held-out shards) is
measured at the start and end of the stage: the forgetting check. The last checkpoint's model
is exported to `final/` in Hugging Face format (`trainer.export`).
"""

import hashlib
import json
import math
import os
import sys
import tempfile
import time
from collections import Counter

import torch
import torch.distributed as dist
import torch.nn.functional as F

from core.atomic import LOCAL, write_atomic
from core.errors import AuroraError
from trainer import checkpoint
from trainer.config import RESUME_MAY_CHANGE, TrainConfig, changed_on_resume, check_config, config_values, load_config
from trainer.export import export


def setup_distributed() -> tuple[int, int, torch.device]:
    """(rank, world size, device). A single process still gets a process group: megatron's
    dataset builder and the checkpoint code expect one."""
    device = torch.device("cpu")
    if torch.cuda.is_available():  # the device first: NCCL/RCCL bind to the current one
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if "WORLD_SIZE" in os.environ:  # started by torchrun
        dist.init_process_group(backend)
    else:
        store = dist.FileStore(tempfile.mktemp(prefix="aurora-train-"), 1)
        dist.init_process_group(backend, store=store, rank=0, world_size=1)
    return dist.get_rank(), dist.get_world_size(), device


def accelerator(device: torch.device) -> str:
    if device.type == "cpu":
        return "CPU"
    name = torch.cuda.get_device_name(device)
    return f"ROCm {torch.version.hip} ({name})" if torch.version.hip else f"CUDA {torch.version.cuda} ({name})"


def learning_rate(step: int, config: TrainConfig) -> float:
    """Linear warm-up to the peak, then cosine decay to the minimum at the last step."""
    if step < config.warmup_steps:
        return config.learning_rate * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))
    return config.min_learning_rate + (config.learning_rate - config.min_learning_rate) * cosine


def mixed_precision(device: torch.device, config: TrainConfig):
    """FSDP2's policy on GPUs: bf16 parameters and compute, gradients reduced in float32. None on
    CPUs (float32 throughout) and with `bf16: false`."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if device.type != "cuda" or not config.bf16:
        return None
    return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)


def load_model(path: str, config: TrainConfig, device: torch.device, world: int):
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
    from transformers import GPTBigCodeForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # ours is the one to watch
    model = GPTBigCodeForCausalLM.from_pretrained(path, attn_implementation="sdpa", dtype=torch.float32)
    if config.activation_checkpointing:
        model.gradient_checkpointing_enable()
    model.to(device)
    if config.compile:  # in place, so parameter names (and checkpoints) stay those of the model
        for block in model.transformer.h:
            block.compile()
    policy = mixed_precision(device, config)
    if world > 1 or policy is not None:
        for block in model.transformer.h:
            fully_shard(block, mp_policy=policy or MixedPrecisionPolicy())
        fully_shard(model, mp_policy=policy or MixedPrecisionPolicy())
    return model


def token_losses(model, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Summed next-token cross entropy of a batch (in float32, whatever the logits' type)."""
    logits = model(input_ids=inputs, use_cache=False).logits  # training keeps no key-value cache (compiled blocks would recompile per layer)
    return F.cross_entropy(logits.float().flatten(0, 1), labels.flatten(), reduction="sum")


@torch.no_grad()
def validate(model, data, config: TrainConfig, device) -> dict[str, float]:
    """Mean validation loss per language; each process takes every world-th batch."""
    model.eval()
    rank, world = dist.get_rank(), dist.get_world_size()
    losses = {}
    for language in data.languages:
        total = torch.zeros(2, dtype=torch.float64, device=device)
        batches = list(data.validation_batches(language, config.validation_sequences, config.micro_batch_size))
        if not batches:
            raise AuroraError(f"the stage's {language} validation shards hold less than one sequence of "
                              f"{config.sequence_length} tokens: hold out more documents (validation_documents)")
        # Every process runs the same number of forward passes (FSDP needs all of them for each).
        for i in range(0, len(batches), world):
            inputs, labels = batches[min(i + rank, len(batches) - 1)]
            loss = token_losses(model, inputs.to(device), labels.to(device))
            if i + rank < len(batches):
                total += torch.tensor([loss.item(), labels.numel()], dtype=torch.float64, device=device)
        dist.all_reduce(total)
        losses[language] = (total[0] / total[1]).item()
    model.train()
    return losses


def _log_until(path: str, step: int) -> list[str]:
    """The log's lines up to `step`. A last line without its line end is what a kill or a full disk
    leaves (a step after the checkpoint: dropped); any other line must be a record of this log."""
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", errors="replace").splitlines(keepends=True)
    except FileNotFoundError:
        return []
    except OSError as e:
        raise AuroraError(f"cannot read {path}: {e.strerror}") from None
    if lines and not lines[-1].endswith("\n"):
        lines.pop()
    kept = []
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except ValueError:
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("step"), int):
            raise AuroraError(f"{path}: line {number} is not a record of this log; move the file away to resume")
        if record["step"] <= step:
            kept.append(line)
    return kept


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: aurora train CONFIG   (or: torchrun ... -m trainer CONFIG)", file=sys.stderr)
        return 2
    rank, world, device = setup_distributed()
    try:
        return train(load_config(args[0]), rank, world, device)
    except AuroraError as e:
        if rank == 0:
            print(f"aurora: error: {e}", file=sys.stderr)
        return 2
    finally:
        dist.destroy_process_group()


def train(config: TrainConfig, rank: int, world: int, device: torch.device) -> int:
    manifest = check_config(config, world)  # before any work
    stage_sha256 = hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()
    resume = checkpoint.latest(config.output)  # so is a `latest` naming something outside the run
    if resume:  # and so is a run resumed under another config or stage than the one that wrote it
        resumed = checkpoint.read_trainer(resume)
        changed = changed_on_resume(config, resumed["run"]["config"])
        changed += ["stage (its manifest)"] if resumed["run"]["stage"] != stage_sha256 else []
        if changed:
            raise AuroraError(f"{config.path}: {', '.join(changed)} differ from the run it resumes ({resume}); "
                              f"set them back or train into a new output (a resumed run may change only "
                              f"{', '.join(RESUME_MAY_CHANGE)})")
        checkpoint.check_files(resume, resumed)
    from tqdm import tqdm

    from trainer.data import StageData
    from trainer.report import plot_curves, summary

    say = print if rank == 0 else (lambda *a, **k: None)
    say(f"aurora train {config.name}: {world} process(es) on {accelerator(device)}"
        f"{', FSDP' if world > 1 else ''}; stage {config.stage}; from {config.init}")
    os.makedirs(config.output, exist_ok=True)
    torch.manual_seed(config.seed)

    # Data: megatron builds its index caches once (first process), the others then read them.
    global_sequences = config.global_batch_sequences
    stage_folder = config.stage[: -len("manifest.json")] if config.stage.endswith("manifest.json") else config.stage
    build = lambda: StageData(manifest, stage_folder, config.sequence_length, config.seed,  # noqa: E731
                              config.steps * global_sequences, os.path.join(config.output, "cache"))
    data = build() if rank == 0 else None
    dist.barrier()
    data = data or build()

    # Model, optimizer, schedule; resumed from the latest checkpoint when there is one.
    model = load_model(config.init, config, device, world)
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.learning_rate, betas=(config.beta1, config.beta2), fused=device.type == "cuda",
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: learning_rate(s, config) / config.learning_rate)
    state = {"step": 0, "samples": 0, "tokens": Counter()}
    if resume:
        state = checkpoint.load(resume, resumed, model, optimizer, scheduler, config.seed)
        written_by = state.pop("written_by")
        say(f"resumed from {resume} at step {state['step']}"
            + (f" (written by {written_by} processes: resharded; random streams reseeded)" if written_by != world else ""))

    log_path = os.path.join(config.output, "train.jsonl")
    validation_path = os.path.join(config.output, "validation.json")
    if rank == 0:  # a resumed run's log ends where its checkpoint was taken
        write_atomic(LOCAL, log_path, "".join(_log_until(log_path, state["step"]) if resume else []).encode())
    if resume:  # the start validation as the checkpoint keeps it: validation.json is output only
        validation = {"start": resumed["run"]["validation"]["start"]}
    else:  # every process gets the same figures (they are all-reduced)
        validation = {"start": validate(model, data, config, device)}
        if rank == 0:
            write_atomic(LOCAL, validation_path, json.dumps(validation, indent=2).encode())
    run = {"config": config_values(config), "stage": stage_sha256, "validation": {"start": validation["start"]}}

    # The loop: each step takes the next global batch of samples; this process its share of it.
    per_process = global_sequences // world
    accumulation = per_process // config.micro_batch_size
    tokens_per_step = global_sequences * config.sequence_length
    progress = tqdm(total=config.steps, initial=state["step"], disable=rank != 0, unit="step", dynamic_ncols=True)
    model.train()
    while state["step"] < config.steps:
        started = time.perf_counter()
        first = state["samples"] + rank * per_process
        loss_sum, languages = torch.zeros((), dtype=torch.float64, device=device), Counter()
        for micro in range(accumulation):
            start = first + micro * config.micro_batch_size
            batch, counts = data.batch(list(range(start, start + config.micro_batch_size)))
            languages.update(counts)
            batch = batch.to(device)
            if hasattr(model, "set_requires_gradient_sync"):  # sharded: reduce gradients once, after the last micro-batch
                model.set_requires_gradient_sync(micro == accumulation - 1)
            loss = token_losses(model, batch[:, :-1], batch[:, 1:])
            (loss / (tokens_per_step / world)).backward()
            loss_sum += loss.detach().double()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
        dist.all_reduce(loss_sum)
        if not (math.isfinite(loss_sum.item()) and math.isfinite(grad_norm.item())):  # the same on every process
            progress.leave = False
            progress.close()  # cleared, so that the error is the line left on the screen
            raise AuroraError(f"step {state['step'] + 1}: the loss ({loss_sum.item() / tokens_per_step}) or the gradient "
                              f"norm ({grad_norm.item()}) is not finite; stopped before the optimizer took it: the "
                              f"checkpoints are untouched and nothing is exported (a learning rate too high, or damaged data)")
        lr = scheduler.get_last_lr()[0]
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)

        gathered = [None] * world
        dist.all_gather_object(gathered, languages)
        for counts in gathered:
            state["tokens"].update(counts)
        state["step"] += 1
        state["samples"] += global_sequences
        seconds = time.perf_counter() - started
        record = {"step": state["step"], "loss": loss_sum.item() / tokens_per_step, "lr": lr,
                  "grad_norm": grad_norm.item(), "tokens_per_s": tokens_per_step / seconds,
                  "tokens": dict(sorted(state["tokens"].items()))}
        if rank == 0:
            with open(log_path, "a") as log:
                log.write(json.dumps(record) + "\n")
        progress.update(1)
        progress.set_postfix(loss=f"{record['loss']:.4f}", lr=f"{lr:.2e}")
        if state["step"] % config.checkpoint_every == 0 or state["step"] == config.steps:
            checkpoint.save(config.output, state["step"], model, optimizer, scheduler, state, config.init, run)
    progress.close()

    validation["end"] = validate(model, data, config, device)
    if rank == 0:
        write_atomic(LOCAL, validation_path, json.dumps(validation, indent=2).encode())
    if rank == 0:
        final = export(checkpoint.latest(config.output), os.path.join(config.output, "final"))
        records = [json.loads(line) for line in open(log_path)]
        plot_curves(records, validation, os.path.join(config.output, "curves.png"))
        text = summary(config, manifest, records, validation, final)
        with open(os.path.join(config.output, "summary.txt"), "w") as f:
            f.write(text + "\n")
        print(text)
    dist.barrier()
    return 0
