"""Checkpoint memory and time per process: ours (`trainer.checkpoint`: every process writes its
shard with torch.distributed.checkpoint) against the full gather it replaced (the model and
optimizer state gathered to the first process with CPU offload and written with one
`torch.save`; on load every process reads the whole file), on 1, 2 and 4 processes (gloo).

The model is a GPT-BigCode of about 75M parameters (n_embd 768, 6 layers, StarCoder's 49,152-token
vocabulary, multi-query attention), sharded with FSDP2 as the trainer does, after one AdamW step so
the optimizer state exists: state = parameters + exp_avg + exp_avg_sq, 12 bytes a parameter.
Each system runs in its own fresh processes, per round (the two alternate which goes first): each
process measures its resident memory before the operation and its peak during it (VmHWM, reset
through /proc/self/clear_refs just before), and the seconds; checkpoint memory = peak - before,
the largest over the rounds. Seconds are medians over processes and rounds.
Target: ours at most the process's 1/world share of the state plus 10%.

    .venv/bin/python bench/checkpoint.py [--processes 1 2 4] [--rounds 2]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = sys.path[0]

MIB = 1 << 20
MODEL = dict(vocab_size=49152, n_positions=1024, n_embd=768, n_layer=6, n_head=12, multi_query=True,
             resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)


def _memory() -> tuple[float, float]:
    """(VmRSS, VmHWM) of this process, MiB."""
    values = {}
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                values[line.split(":")[0]] = int(line.split()[1]) / 1024
    return values["VmRSS"], values["VmHWM"]


def _measured(operation) -> dict:
    import torch.distributed as dist

    dist.barrier()
    with open("/proc/self/clear_refs", "w") as f:  # the peak starts again from the current RSS
        f.write("5")
    before, _ = _memory()
    start = time.perf_counter()
    operation()
    seconds = time.perf_counter() - start
    _, peak = _memory()
    dist.barrier()
    return {"before": before, "peak": peak, "delta": peak - before, "seconds": seconds}


def _trained_model():
    import torch
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard
    from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM

    torch.manual_seed(0)
    model = GPTBigCodeForCausalLM(GPTBigCodeConfig(**MODEL))
    if dist.get_world_size() > 1:
        for block in model.transformer.h:
            fully_shard(block)
        fully_shard(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    inputs = torch.randint(0, MODEL["vocab_size"], (1, 64))
    model(input_ids=inputs, labels=inputs).loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return model, optimizer, scheduler


def _ours(folder: str) -> dict:
    from collections import Counter

    from trainer import checkpoint

    model, optimizer, scheduler = _trained_model()
    state = {"samples": 8, "tokens": Counter({"en": 1})}
    run = {"config": {}, "stage": "", "validation": {"start": {}}}
    saved = _measured(lambda: checkpoint.save(folder, 1, model, optimizer, scheduler, state, folder, run))
    del model, optimizer
    model, optimizer, scheduler = _trained_model()
    step = os.path.join(folder, "checkpoints", "step_0000001")  # loading checks every file's sha256 first
    loaded = _measured(lambda: checkpoint.load(step, checkpoint.read_trainer(step), model, optimizer, scheduler, seed=0))
    return {"save": saved, "load": loaded}


def _full_gather(folder: str) -> dict:
    import torch
    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    full = StateDictOptions(full_state_dict=True, cpu_offload=True)
    path = os.path.join(folder, "full.pt")
    os.makedirs(folder, exist_ok=True)
    model, optimizer, _ = _trained_model()

    def save():
        model_state = get_model_state_dict(model, options=full)
        optimizer_state = get_optimizer_state_dict(model, optimizer, options=full)
        if dist.get_rank() == 0:
            torch.save({"model": model_state, "optimizer": optimizer_state}, path)

    saved = _measured(save)
    del model, optimizer
    model, optimizer, _ = _trained_model()

    def load():
        state = torch.load(path, weights_only=True)
        set_model_state_dict(model, state["model"], options=StateDictOptions(full_state_dict=True))
        set_optimizer_state_dict(model, optimizer, state["optimizer"], options=StateDictOptions(full_state_dict=True))

    loaded = _measured(load)
    return {"save": saved, "load": loaded}


SYSTEMS = {"ours": _ours, "full gather": _full_gather}


def child(system: str, folder: str, out: str) -> None:
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    torch.set_num_threads(1)
    result = SYSTEMS[system](folder)
    with open(os.path.join(out, f"rank_{dist.get_rank()}.json"), "w") as f:
        json.dump(result, f)
    dist.destroy_process_group()


def run(system: str, processes: int) -> list[dict]:
    """One system on `processes` processes, in fresh processes (no memory freed by the other's run
    to reuse); each process's figures."""
    with tempfile.TemporaryDirectory() as folder:
        out = os.path.join(folder, "results")
        os.makedirs(out)
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
                   os.path.abspath(__file__), "--child", system, os.path.join(folder, "run"), out]
        env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{system} on {processes} processes failed:\n{done.stderr[-3000:]}")
        return [json.load(open(os.path.join(out, f"rank_{r}.json"))) for r in range(processes)]


def state_mib() -> float:
    from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM

    model = GPTBigCodeForCausalLM(GPTBigCodeConfig(**MODEL))
    return sum(p.numel() for p in model.parameters()) * 12 / MIB


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(*sys.argv[2:5])
    parser = argparse.ArgumentParser()
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    state = state_mib()
    print(f"GPT-BigCode {MODEL}: state (parameters + AdamW's two moments) {state:,.0f} MiB\n")
    print("| processes | system | share of state per process MiB | save s | load s | checkpoint memory at save MiB, "
          "per process (max) | at load (max) | save memory / share |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for processes in args.processes:
        ranks = {system: [] for system in SYSTEMS}  # per system, per round, per process
        for round_ in range(args.rounds):
            order = list(SYSTEMS) if round_ % 2 == 0 else list(SYSTEMS)[::-1]
            for system in order:
                ranks[system].append(run(system, processes))
        share = state / processes
        for system, rounds in ranks.items():
            rows = [r for result in rounds for r in result]
            save_s = sorted(r["save"]["seconds"] for r in rows)[len(rows) // 2]
            load_s = sorted(r["load"]["seconds"] for r in rows)[len(rows) // 2]
            per_rank = [max(result[rank]["save"]["delta"] for result in rounds) for rank in range(processes)]
            load_mem = max(r["load"]["delta"] for r in rows)
            print(f"| {processes} | {system} | {share:,.0f} | {save_s:.2f} | {load_s:.2f} | "
                  f"{', '.join(f'{m:,.0f}' for m in per_rank)} ({max(per_rank):,.0f}) | {load_mem:,.0f} | "
                  f"{max(per_rank) / share:.2f} |", flush=True)


if __name__ == "__main__":
    main()
