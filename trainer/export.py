"""A checkpoint's model in Hugging Face format, without gathering it in one process.

`export(checkpoint, output)` writes `config.json`, `tokenizer.json` and the model's tensors as
`model-0000k-of-0000n.safetensors` files of at most `FILE_BYTES` each with their
`model.safetensors.index.json` (what `AutoModelForCausalLM.from_pretrained` reads). The tensors
are assembled from the processes' shards by DCP's own consolidation, one tensor at a time, so
memory is bounded by the largest tensor (StarCoderPlus: its 49,152 x 6,144 embedding, 1.2 GB in
float32), not by the model. The optimizer's state stays behind. Written to `<output>.tmp` and
renamed. It checks what resume checks (`export`), and refuses a checkpoint that fails them.
`aurora train export RUN [--step N]` exports a run's checkpoint; training ends with its last
checkpoint exported to `<output>/final/`, which CAT starts from.
"""

import math
import os
import shutil

import torch
from safetensors import safe_open
from torch.distributed.checkpoint import HuggingFaceStorageReader

# DCP's consolidation of its safetensors shards into whole tensors (the function its
# HuggingFaceStorageWriter calls when asked to consolidate at save time).
from torch.distributed.checkpoint._consolidate_hf_safetensors import consolidate_safetensors_files

from core.errors import AuroraError
from trainer.checkpoint import MODEL_FILES, OPTIMIZER, STATE, file_problem, latest, read_trainer, state_problem, step_folder

FILE_BYTES = 5 * 10**9  # transformers' default largest file


def model_files(checkpoint: str) -> dict[str, int]:
    """{tensor name: file index from 1}: the model's tensors in order, a new file every FILE_BYTES;
    the tensors checked against the model its config.json describes (`state_problem`, as on resume)."""
    folder = os.path.join(checkpoint, STATE)
    try:
        metadata = HuggingFaceStorageReader(folder).read_metadata()  # the shards' headers only
    except Exception as e:  # noqa: BLE001 - a missing folder or a damaged header: safetensors raises many kinds
        raise AuroraError(f"{folder}: not a checkpoint's state ({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None
    stored = {name: tensor for name, tensor in metadata.state_dict_metadata.items() if not name.startswith(OPTIMIZER)}
    problem = state_problem(stored, _model_shapes(checkpoint))
    if problem:
        raise AuroraError(f"{folder}: not a checkpoint of its model: {problem}")
    files, index, filled = {}, 1, 0
    for name, tensor in sorted(stored.items()):
        size = math.prod(tensor.size) * tensor.properties.dtype.itemsize
        if filled and filled + size > FILE_BYTES:
            index, filled = index + 1, 0
        files[name] = index
        filled += size
    return files


def _model_shapes(checkpoint: str) -> dict[str, tuple]:
    """{name: shape} of the tensors a checkpoint of the model in its config.json stores: the model
    built on the meta device (no memory), a tied weight under its first name only, as saved."""
    from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM

    path = os.path.join(checkpoint, "config.json")
    if not os.path.exists(path):
        raise AuroraError(f"{checkpoint}: no config.json (not a checkpoint written by aurora train)")
    try:
        config = GPTBigCodeConfig.from_json_file(path)
        with torch.device("meta"):
            model = GPTBigCodeForCausalLM(config)
    except Exception as e:  # noqa: BLE001 - JSON of another shape: transformers raises many kinds
        raise AuroraError(f"{path}: not a GPT-BigCode config ({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None
    return {name: tuple(p.shape) for name, p in model.named_parameters()}


def _non_finite(folder: str) -> str | None:
    """The first tensor of the exported files that holds a NaN or an infinity, one tensor in memory at a time."""
    for name in sorted(os.listdir(folder)):
        if name.endswith(".safetensors"):
            with safe_open(os.path.join(folder, name), "pt") as f:
                for key in f.keys():
                    if not f.get_tensor(key).isfinite().all():
                        return key
    return None


def export(checkpoint: str, output: str) -> str:
    """The checks of a resume first: every file the one it wrote (sha256), no links, every tensor of
    the model with its shape; then the values, all finite."""
    problem = file_problem(checkpoint, read_trainer(checkpoint)["files"])
    if problem:
        raise AuroraError(f"{checkpoint}: {problem}")
    files = model_files(checkpoint)
    tmp = output.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        consolidate_safetensors_files(os.path.join(checkpoint, STATE), tmp, files)
    except Exception as e:  # noqa: BLE001 - a truncated shard: reads come back short, offsets out of range
        shutil.rmtree(tmp, ignore_errors=True)
        raise AuroraError(f"{checkpoint}: cannot assemble its model ({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None
    non_finite = _non_finite(tmp)
    if non_finite:
        shutil.rmtree(tmp, ignore_errors=True)
        raise AuroraError(f"{checkpoint}: {non_finite} holds values that are not finite; not exported")
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
        checkpoint = step_folder(run, f"step_{step:07d}") if step >= 0 else None
        if checkpoint is None:
            raise AuroraError(f"{run}: no checkpoint of step {step} in {run}/checkpoints (a folder, not a link)")
    return export(checkpoint, os.path.join(run, "exports", os.path.basename(checkpoint)))
