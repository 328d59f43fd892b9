"""The trainer on one GPU: what the CPU tests cannot show (bf16 under FSDP2, the fused AdamW, compiled
blocks, checkpoints and export written from GPU state) and its speed.

Checks, each with the real trainer (`python -m trainer`) on the demo CAP stage and the tiny model:
  1. a run of 8 steps (checkpoints at 4 and 8) on the GPU: finite losses, bf16 compute (a
     forward hook sees bf16 weights in the blocks) with float32 sharded parameters;
  2. that run resumed from its step-4 checkpoint gives the same losses (max difference printed);
  3. `compile: true` gives the same losses to bf16 tolerance;
  4. the step-8 export loads in transformers and its logits equal the trained shards' (read by DCP).
Speed: a GPT-BigCode of StarCoderBase-1B's shape (2048 wide, 24 layers, multi-query attention,
49,152-token vocabulary) at sequence 2048, as the trainer builds it (`load_model`: FSDP2 with bf16
parameters and float32 reduction, fused AdamW), eager and compiled: tokens/s and model FLOPs
utilisation (6 x parameters x tokens + attention, against the GPU's dense bf16 peak), then the
time and GPU memory of a sharded checkpoint save and load of that model (`trainer.checkpoint`).

    python bench/train_gpu.py --stage out/demo/cap --init assets/tiny-gpt-bigcode --work /tmp/gpu
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = sys.path[0]

import torch  # noqa: E402

CONFIG = """name: cap
stage: {stage}
init: {init}
output: {output}
seed: 5
sequence_length: 128
global_batch_tokens: 4096
micro_batch_size: 8
steps: 8
learning_rate: 3.0e-3
min_learning_rate: 3.0e-4
warmup_steps: 1
checkpoint_every: 4
validation_sequences: 8
compile: {compile}
"""
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # a CPU runs it too, slowly: a smoke test of the script
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 FLOP/s of the SXM parts


def _cuda(name: str):
    """torch.cuda.<name>() on a GPU; 0 on a CPU."""
    return getattr(torch.cuda, name)() if DEVICE == "cuda" else 0


def _train(work: str, name: str, stage: str, init: str, compile_blocks: bool = False, output: str | None = None) -> str:
    output = output or os.path.join(work, name)
    config = os.path.join(work, f"{name}.yaml")
    with open(config, "w") as f:
        f.write(CONFIG.format(stage=stage, init=init, output=output, compile=str(compile_blocks).lower()))
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "trainer", config], cwd=ROOT, capture_output=True, text=True)
    print(f"  {name}: rc {result.returncode}, {time.perf_counter() - start:.1f} s; {result.stdout.splitlines()[0] if result.stdout else ''}")
    if result.returncode:
        print(result.stdout[-2000:], result.stderr[-4000:])
        raise SystemExit(f"{name} failed")
    return output


def _losses(run: str) -> list[float]:
    with open(os.path.join(run, "train.jsonl")) as f:
        return [json.loads(line)["loss"] for line in f]


def correctness(stage: str, init: str, work: str) -> None:
    print("correctness (demo CAP stage, tiny model, python -m trainer):")
    whole = _train(work, "whole", stage, init)
    losses = _losses(whole)
    print(f"  losses: {' '.join(f'{x:.4f}' for x in losses)}")
    assert all(x == x and x < 1e4 for x in losses), "a loss is not finite"

    resumed = os.path.join(work, "resumed")
    shutil.copytree(whole, resumed)
    shutil.rmtree(os.path.join(resumed, "checkpoints", "step_0000008"))
    shutil.rmtree(os.path.join(resumed, "final"))
    with open(os.path.join(resumed, "checkpoints", "latest"), "w") as f:
        f.write("step_0000004\n")
    _train(work, "resumed", stage, init, output=resumed)
    diff = max(abs(a - b) for a, b in zip(_losses(resumed), losses))
    print(f"  resumed from step 4: {len(_losses(resumed))} losses, max |difference| from the whole run {diff:.2e}")

    compiled = _train(work, "compiled", stage, init, compile_blocks=True)
    diff = max(abs(a - b) for a, b in zip(_losses(compiled), losses))
    print(f"  compile: true: max |loss difference| from eager {diff:.2e}")

    from transformers import AutoModelForCausalLM

    from trainer.export import export_run

    exported = export_run(whole, 8)
    model = AutoModelForCausalLM.from_pretrained(exported, dtype=torch.float32).to(DEVICE).eval()
    final = AutoModelForCausalLM.from_pretrained(os.path.join(whole, "final"), dtype=torch.float32).to(DEVICE).eval()
    ids = torch.arange(1, 65, device=DEVICE)[None]
    with torch.no_grad():
        same = torch.equal(model(ids).logits, final(ids).logits)
    start = AutoModelForCausalLM.from_pretrained(init, dtype=torch.float32).to(DEVICE).eval()
    with torch.no_grad():
        moved = not torch.equal(model(ids).logits, start(ids).logits)
    print(f"  export of step 8 loads in transformers: logits equal final/: {same}; differ from the start model: {moved}")


def _model_flops_per_token(config, sequence: int) -> float:
    """Training FLOPs per token as PaLM's appendix B counts them: 6 x parameters (the tied embedding
    counted once: it is the logits' matrix product) + 12 x layers x width x sequence (attention)."""
    n = sum(p.numel() for name, p in _shapes(config))
    return 6 * n + 12 * config.n_layer * config.n_embd * sequence


def _shapes(config):
    from transformers import GPTBigCodeForCausalLM

    with torch.device("meta"):
        model = GPTBigCodeForCausalLM(config)
    return [(n, p) for n, p in model.named_parameters() if "wpe" not in n]


def speed(work: str, steps: int, batch: int, layers: int) -> None:
    import torch.distributed as dist
    from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM

    from trainer import checkpoint
    from trainer.config import TrainConfig
    from trainer.train import load_model, setup_distributed, token_losses

    sequence = 2048
    config = GPTBigCodeConfig(vocab_size=49152, n_positions=8192, n_embd=2048, n_layer=layers, n_head=16, multi_query=True,
                              resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    folder = os.path.join(work, "model-1b")
    torch.manual_seed(0)
    GPTBigCodeForCausalLM(config).save_pretrained(folder)
    shutil.copy(os.path.join(ROOT, "assets", "tiny-gpt-bigcode", "tokenizer.json"), folder)
    _, _, device = setup_distributed()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    flops = _model_flops_per_token(config, sequence)
    print(f"speed: {name}; GPT-BigCode {sum(p.numel() for _, p in _shapes(config)) / 1e9:.2f}B parameters (no position table), "
          f"sequence {sequence}, micro-batch {batch}, bf16 FSDP2, fused AdamW")
    for compile_blocks in (False, True):
        train_config = TrainConfig(path="", name="cap", stage="", init=folder, output="", seed=0, sequence_length=sequence,
                                   global_batch_tokens=sequence * batch, micro_batch_size=batch, steps=steps,
                                   learning_rate=1e-4, min_learning_rate=1e-5, warmup_steps=1, compile=compile_blocks)
        model = load_model(folder, train_config, device, world=1)
        seen = []  # what a block computes in, seen during the first training step
        hook = model.transformer.h[0].attn.c_attn.register_forward_hook(lambda m, i, o: seen.append((m.weight.dtype, o.dtype)))
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        data = torch.randint(0, config.vocab_size, (batch, sequence + 1), device=device)
        _cuda("reset_peak_memory_stats")
        times = []
        for step in range(steps + 3):
            _cuda("synchronize")
            start = time.perf_counter()
            loss = token_losses(model, data[:, :-1], data[:, 1:]) / (batch * sequence)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            _cuda("synchronize")
            hook.remove()
            if step >= 3:  # warm-up: allocator, cuBLAS heuristics, compilation
                times.append(time.perf_counter() - start)
        seconds = sorted(times)[len(times) // 2]
        tokens = batch * sequence / seconds
        mfu = f", MFU {tokens * flops / peak:.1%}" if peak else ""
        print(f"  compile {str(compile_blocks).lower():5}: {seconds * 1000:.0f} ms/step (median of {steps}), {tokens:,.0f} tokens/s{mfu}, "
              f"peak GPU memory {_cuda('max_memory_allocated') / 2**30:.1f} GiB, last loss {loss.item():.3f}")
        if not compile_blocks:  # after a step every parameter is resharded: what the optimizer holds
            print(f"  block weights and outputs in forward: {seen[0]}; sharded parameters stored as {({p.dtype for p in model.parameters()})}")
        if compile_blocks:
            break
        out = os.path.join(work, "ckpt")
        _cuda("synchronize")
        before = _cuda("memory_allocated")
        _cuda("reset_peak_memory_stats")
        start = time.perf_counter()
        path = checkpoint.save(out, steps, model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0),
                               {"step": steps, "samples": 0, "tokens": {}}, folder)
        saved = time.perf_counter() - start
        extra = (_cuda("max_memory_allocated") - before) / 2**20
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs) / 2**30
        start = time.perf_counter()
        checkpoint.load(path, model, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0), 0)
        loaded = time.perf_counter() - start
        print(f"  checkpoint of that state ({size:.1f} GiB on disk): save {saved:.1f} s ({size / saved:.2f} GiB/s), "
              f"load {loaded:.1f} s; GPU memory above the state while saving {extra:.0f} MiB")
        del model, optimizer
        _cuda("empty_cache")
    dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--stage", required=True)
    parser.add_argument("--init", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--skip", choices=["correctness", "speed"])
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name() if DEVICE == 'cuda' else 'CPU'}")
    if args.skip != "correctness":
        correctness(os.path.abspath(args.stage), os.path.abspath(args.init), args.work)
    if args.skip != "speed":
        speed(args.work, args.steps, args.batch, args.layers)


if __name__ == "__main__":
    main()
