"""Training configs (`recipes/train/*.yaml`, `recipes/demo/train-*.yaml`) and the checks that run
before any work: a missing stage manifest, shards of another tokenizer than the model's, or a
sequence longer than the model's positions are one clear line each."""

import json
import math
import os
from dataclasses import dataclass, fields

from core.config import read_yaml
from core.errors import AuroraError
from core.tokenizer import EOD_TOKEN, tokenizer_info
from manifests.manifest import load_manifest


@dataclass
class TrainConfig:
    path: str
    name: str  # the stage: cap or cat
    stage: str  # the stage manifest (or its folder)
    init: str  # Hugging Face checkpoint folder to start from (StarCoderPlus; CAP's final model for CAT)
    output: str
    seed: int
    sequence_length: int
    global_batch_tokens: int  # tokens per optimizer step, over all processes
    micro_batch_size: int  # sequences per forward pass on one process
    steps: int
    learning_rate: float
    min_learning_rate: float
    warmup_steps: int
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    checkpoint_every: int = 1000
    validation_sequences: int = 64  # per language, from the stage's validation shards
    bf16: bool = True  # on GPUs, bf16 parameters and compute (FSDP2's mixed precision); CPUs run in float32
    activation_checkpointing: bool = False
    compile: bool = False  # torch.compile each transformer block

    @property
    def global_batch_sequences(self) -> int:
        return self.global_batch_tokens // self.sequence_length


# What a resumed run may change: how the same steps are computed and kept, not what they train
# (micro_batch_size splits the same global batch in other pieces, as resuming on another number of
# processes does; bf16 follows the hardware; output and stage may move, the stage's manifest is
# compared itself). Any other change is refused: the checkpoint's schedule, data order and
# validation belong to the config that wrote it.
RESUME_MAY_CHANGE = ("output", "stage", "checkpoint_every", "micro_batch_size", "bf16", "activation_checkpointing", "compile")


def config_values(config: TrainConfig) -> dict:
    """The config as checkpoints keep it (`trainer.json`'s run.config)."""
    return {f.name: getattr(config, f.name) for f in fields(TrainConfig) if f.name != "path"}


def changed_on_resume(config: TrainConfig, saved: dict) -> list[str]:
    """The keys of `config` that differ from `saved` (the checkpoint's) and may not change on resume."""
    values = config_values(config)
    return sorted(key for key in set(values) | set(saved) if key not in RESUME_MAY_CHANGE and values.get(key) != saved.get(key))


MAX_MODEL_CONFIG_BYTES = 1 << 20
_REQUIRED = ("name", "stage", "init", "output", "seed", "sequence_length", "global_batch_tokens", "micro_batch_size",
             "steps", "learning_rate", "min_learning_rate", "warmup_steps")


def load_config(path: str) -> TrainConfig:
    _, data = read_yaml(path, "training config")
    known = {f.name for f in fields(TrainConfig)} - {"path"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise AuroraError(f"{path}: unknown key '{unknown[0]}' (allowed: {', '.join(sorted(known))})")
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise AuroraError(f"{path}: missing key '{missing[0]}'")
    accepted = {int: (int,), float: (int, float), bool: (bool,), str: (str,)}
    for f in fields(TrainConfig):
        value = data.get(f.name)
        if f.name in data and (not isinstance(value, accepted[f.type]) or (f.type is not bool and isinstance(value, bool))):
            raise AuroraError(f"{path}: '{f.name}' must be {f.type.__name__}, got {value!r}")
    config = TrainConfig(path=path, **data)
    for key in ("sequence_length", "global_batch_tokens", "micro_batch_size", "steps", "checkpoint_every",
                "validation_sequences"):
        if getattr(config, key) < 1:
            raise AuroraError(f"{path}: '{key}' must be at least 1")
    if config.global_batch_tokens % config.sequence_length:
        raise AuroraError(f"{path}: global_batch_tokens must be a multiple of sequence_length")
    _check_ranges(config)
    return config


def _check_ranges(config: TrainConfig) -> None:
    """Values that type-check but would train wrongly (a negative learning rate runs to exit 0) or crash
    deep in torch. NaN compares false with everything, so finiteness is checked first."""
    for f in fields(TrainConfig):
        value = getattr(config, f.name)
        if f.type is float and not math.isfinite(value):
            raise AuroraError(f"{config.path}: '{f.name}' must be a finite number, got {value!r}")
    lr = config.learning_rate
    allowed = {
        "seed": (0 <= config.seed < 2**32, "between 0 and 2**32 - 1"),  # numpy's seed range (megatron's shuffles)
        "learning_rate": (lr > 0, "above 0"),
        "min_learning_rate": (0 <= config.min_learning_rate <= lr, f"between 0 and learning_rate ({lr})"),
        "warmup_steps": (0 <= config.warmup_steps <= config.steps, f"between 0 and steps ({config.steps})"),
        "weight_decay": (config.weight_decay >= 0, "at least 0"),
        "beta1": (0 <= config.beta1 < 1, "at least 0 and below 1"),
        "beta2": (0 <= config.beta2 < 1, "at least 0 and below 1"),
        "grad_clip": (config.grad_clip > 0, "above 0"),
    }
    for key, (ok, allowed_range) in allowed.items():
        if not ok:
            raise AuroraError(f"{config.path}: '{key}' must be {allowed_range}, got {getattr(config, key)!r}")


def check_config(config: TrainConfig, world_size: int) -> dict:
    """Everything that can be checked before training; returns the stage manifest."""
    try:
        manifest, _ = load_manifest(config.stage)
    except AuroraError:
        raise AuroraError(f"{config.path}: no stage manifest at {config.stage} (run `aurora mix` first)") from None
    if manifest.get("kind") != "stage":
        raise AuroraError(f"{config.path}: {config.stage} is a {manifest.get('kind')} manifest, not a stage")
    model = _model_config(config)
    if config.sequence_length > model["n_positions"]:
        raise AuroraError(f"{config.path}: sequence_length {config.sequence_length} is above the model's "
                          f"{model.get('n_positions')} positions")
    tokenizer_path = os.path.join(config.init, "tokenizer.json")
    if os.path.exists(tokenizer_path):
        ours = tokenizer_info(tokenizer_path, EOD_TOKEN)["sha256"]
        if ours != manifest["tokenizer"]["sha256"]:
            raise AuroraError(f"{config.path}: the stage's shards were made with another tokenizer than the model's "
                              f"({manifest['tokenizer']['path']} vs {tokenizer_path})")
    if manifest["tokenizer"]["vocab_size"] > model["vocab_size"]:
        raise AuroraError(f"{config.path}: the stage's tokenizer has {manifest['tokenizer']['vocab_size']} tokens, "
                          f"the model only {model['vocab_size']}")
    per_step = config.micro_batch_size * world_size
    if config.global_batch_sequences % per_step:
        raise AuroraError(f"{config.path}: {config.global_batch_sequences} sequences per step do not split into "
                          f"micro-batches of {config.micro_batch_size} on {world_size} processes")
    if not manifest.get("validation"):
        raise AuroraError(f"{config.path}: the stage has no validation shards (set validation_documents in its recipe)")
    return manifest


def _model_config(config: TrainConfig) -> dict:
    """The init model's config.json, with the sizes checked here as numbers."""
    path = os.path.join(config.init, "config.json")
    if not os.path.exists(path):
        raise AuroraError(f"{config.path}: no Hugging Face checkpoint at {config.init} (config.json missing)")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_MODEL_CONFIG_BYTES + 1)
        model = json.loads(data) if len(data) <= MAX_MODEL_CONFIG_BYTES else None
    except (OSError, ValueError) as e:
        raise AuroraError(f"{path}: not a model config ({type(e).__name__}: {str(e)[:200]})") from None
    if not isinstance(model, dict):
        raise AuroraError(f"{path}: not a model config (a JSON object of at most {MAX_MODEL_CONFIG_BYTES >> 20} MiB)")
    for key in ("vocab_size", "n_positions"):
        if not isinstance(model.get(key), int) or isinstance(model[key], bool) or model[key] < 1:
            raise AuroraError(f"{path}: '{key}' must be a positive integer, got {str(model.get(key))[:80]!r}")
    return model
