"""A checkpoint's model in Hugging Face format, without gathering it in one process.

`export(checkpoint, output)` writes `config.json`, `tokenizer.json` and the model's tensors as
`model-0000k-of-0000n.safetensors` files of at most `FILE_BYTES` each with their
`model.safetensors.index.json` (what `AutoModelForCausalLM.from_pretrained` reads). The tensors
are assembled from the processes' shards by DCP's own consolidation, one tensor at a time, so
memory is bounded by the largest tensor (StarCoderPlus: its 49,152 x 6,144 embedding, 1.2 GB in
float32), not by the model. The optimizer's state stays behind. Written to `<output>.tmp` and
renamed. `aurora train export RUN [--step N]` exports a run's checkpoint; training ends with its
last checkpoint exported to `<output>/final/`, which CAT starts from.
"""

import math
import os
import shutil

from torch.distributed.checkpoint import HuggingFaceStorageReader

# DCP's consolidation of its safetensors shards into whole tensors (the function its
# HuggingFaceStorageWriter calls when asked to consolidate at save time).
from torch.distributed.checkpoint._consolidate_hf_safetensors import consolidate_safetensors_files

from core.errors import AuroraError
from trainer.checkpoint import MODEL_FILES, OPTIMIZER, STATE, latest

FILE_BYTES = 5 * 10**9  # transformers' default largest file


def model_files(checkpoint: str) -> dict[str, int]:
    """{tensor name: file index from 1}: the model's tensors in order, a new file every FILE_BYTES."""
    folder = os.path.join(checkpoint, STATE)
    try:
        metadata = HuggingFaceStorageReader(folder).read_metadata()  # the shards' headers only
    except Exception as e:  # noqa: BLE001 - a missing folder or a damaged header: safetensors raises many kinds
        raise AuroraError(f"{folder}: not a checkpoint's state ({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None
    files, index, filled = {}, 1, 0
    for name, tensor in sorted(metadata.state_dict_metadata.items()):
        if name.startswith(OPTIMIZER):
            continue
        size = math.prod(tensor.size) * tensor.properties.dtype.itemsize
        if filled and filled + size > FILE_BYTES:
            index, filled = index + 1, 0
        files[name] = index
        filled += size
    if not files:
        raise AuroraError(f"{folder}: holds no model tensors")
    return files


def export(checkpoint: str, output: str) -> str:
    files = model_files(checkpoint)
    if not os.path.exists(os.path.join(checkpoint, "config.json")):
        raise AuroraError(f"{checkpoint}: no config.json (not a checkpoint written by aurora train)")
    tmp = output.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        consolidate_safetensors_files(os.path.join(checkpoint, STATE), tmp, files)
    except Exception as e:  # noqa: BLE001 - a truncated shard: reads come back short, offsets out of range
        shutil.rmtree(tmp, ignore_errors=True)
        raise AuroraError(f"{checkpoint}: cannot assemble its model ({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None
    for name in MODEL_FILES:
        if os.path.exists(os.path.join(checkpoint, name)):
            shutil.copy(os.path.join(checkpoint, name), os.path.join(tmp, name))
    shutil.rmtree(output, ignore_errors=True)
    os.replace(tmp, output)
    return output


def export_run(run: str, step: int | None = None) -> str:
    """`aurora train export RUN [--step N]`: RUN's latest checkpoint (or step N's) to `RUN/exports/step_<n>/`."""
    if step is None:
        checkpoint = latest(run)
        if checkpoint is None:
            raise AuroraError(f"{run}: no checkpoints/latest (not a training run's output, or no checkpoint yet)")
    else:
        checkpoint = os.path.join(run, "checkpoints", f"step_{step:07d}")
        if step < 0 or not os.path.isdir(checkpoint):
            raise AuroraError(f"{run}: no checkpoint of step {step} in {run}/checkpoints")
    return export(checkpoint, os.path.join(run, "exports", os.path.basename(checkpoint)))
