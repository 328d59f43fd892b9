"""Typed configuration: YAML files read into plain values with one-line errors.

Curation recipes (`pipeline.recipe`), stage recipes (`pipeline.mix`) and training configs
(`trainer.config`) are dataclasses filled from a YAML mapping; these are the checks they share.
Nothing in a file is executed: YAML is read with `safe_load`.
"""

import math
import re

import yaml

from core.errors import AuroraError

# A name that prefixes output files (shards, pools): a plain file name, never a path.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


def read_yaml(path: str, what: str) -> tuple[bytes, dict]:
    """A config file's bytes (for its hash) and its YAML mapping; one-line errors otherwise."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise AuroraError(f"cannot read {what} {path}: {e.strerror}") from None
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as e:
        raise AuroraError(f"{path}: invalid YAML: {str(e).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise AuroraError(f"{path}: a {what} must be a YAML mapping")
    return raw, data


def number(value, key: str, where: str) -> float:
    """`value` as a finite number; YAML's .nan would switch a rule off silently (every comparison is false)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AuroraError(f"{where}: '{key}' must be a number, got {value!r}")
    if not math.isfinite(value):
        raise AuroraError(f"{where}: '{key}' must be a finite number, got {value!r}")
    return value
