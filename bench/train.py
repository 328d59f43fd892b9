"""Training throughput on CPU for the demo model: the data loader against the model.

The loader (megatron's blended dataset over the demo CAP stage, with tokens per language) must
deliver samples at least 50x faster than the model consumes them, so it never holds training
up; then the training step's tokens/s. Needs `make demo` (or `make mix-cap`) first.

    .venv/bin/python bench/train.py [--config recipes/demo/train-cap.yaml] [--steps 10]
"""

import argparse
import os
import sys
import time

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

from manifests.manifest import load_manifest  # noqa: E402
from trainer.config import load_config  # noqa: E402
from trainer.data import StageData  # noqa: E402
from trainer.train import load_model, setup_distributed, token_losses  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="recipes/demo/train-cap.yaml")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    config = load_config(args.config)
    setup_distributed()
    manifest, folder = load_manifest(config.stage)
    samples = args.steps * config.global_batch_sequences
    data = StageData(manifest, folder.path, config.sequence_length, config.seed, samples * 10, "/tmp/aurora-bench-train-cache")

    start = time.perf_counter()
    for first in range(0, samples * 10, config.micro_batch_size):
        data.batch(list(range(first, first + config.micro_batch_size)))
    loader = samples * 10 / (time.perf_counter() - start)

    model = load_model(config.init, config, torch.device("cpu"), world=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate)
    off = torch.autocast("cpu", enabled=False)
    batches = [data.batch(list(range(i, i + config.micro_batch_size)))[0] for i in range(0, samples, config.micro_batch_size)]
    start = time.perf_counter()
    for i, batch in enumerate(batches):
        (token_losses(model, batch[:, :-1], batch[:, 1:], off) / batch[:, 1:].numel()).backward()
        if (i + 1) % (config.global_batch_sequences // config.micro_batch_size) == 0:
            optimizer.step()
            optimizer.zero_grad()
    seconds = time.perf_counter() - start
    trained = samples / seconds
    parameters = sum(p.numel() for p in model.parameters())
    print(f"model: GPT-BigCode, {parameters:,} parameters, sequence {config.sequence_length}, micro-batch {config.micro_batch_size}, "
          f"{torch.get_num_threads()} CPU threads")
    print(f"data loader: {loader:,.0f} samples/s")
    print(f"training step (forward, backward, AdamW): {trained:,.1f} samples/s, {trained * config.sequence_length:,.0f} tokens/s")
    print(f"loader / model: {loader / trained:,.0f}x (target at least 50x)")


if __name__ == "__main__":
    main()
