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


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (the last would win silently),
    a key that is not a string (every key of ours is a name; a list key cannot even be hashed, and
    keys of mixed types cannot be sorted for the unknown-key message) and any alias: nested aliases
    expand exponentially (a 717-byte "billion laughs" recipe is gigabytes once loaded), and no
    config of ours needs them."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.events.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(None, None, f"alias *{event.anchor[:40]} (YAML aliases are not accepted)", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        keys = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):  # `? [a, b]`: a list or mapping as a key
                what = "a list" if isinstance(key_node, yaml.SequenceNode) else "a mapping"
                raise yaml.constructor.ConstructorError(None, None, f"a key is {what}, not a name", key_node.start_mark)
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):  # `1:`, `true:`, `null:`
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is not a name", key_node.start_mark)
            if key in keys:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice", key_node.start_mark)
            keys.add(key)
        return super().construct_mapping(node, deep=deep)


MAX_CONFIG_BYTES = 1 << 20


def read_yaml(path: str, what: str) -> tuple[bytes, dict]:
    """A config file's bytes (for its hash) and its YAML mapping; one-line errors otherwise."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
    except OSError as e:
        raise AuroraError(f"cannot read {what} {path}: {e.strerror}") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise AuroraError(f"{path}: a {what} larger than {MAX_CONFIG_BYTES:,} bytes is not a {what}")
    try:
        data = yaml.load(raw, Loader=_UniqueKeyLoader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as e:
        raise AuroraError(f"{path}: invalid YAML: {' '.join(str(e).split())[:300]}") from None
    except RecursionError:
        raise AuroraError(f"{path}: YAML nested too deep") from None
    if not isinstance(data, dict):
        raise AuroraError(f"{path}: a {what} must be a YAML mapping")
    return raw, data


def integer(value, key: str, where: str, low: int, high: int) -> int:
    """`value` as an integer within [low, high], one line naming the key otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        kind = "a positive integer" if low == 1 else "a non-negative integer" if low == 0 else f"an integer from {low:,}"
        raise AuroraError(f"{where}: '{key}' must be {kind} of at most {high:,}, got {value!r}")
    return value


def number(value, key: str, where: str) -> float:
    """`value` as a finite number; YAML's .nan would switch a rule off silently (every comparison is false)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AuroraError(f"{where}: '{key}' must be a number, got {value!r}")
    if not math.isfinite(value):
        raise AuroraError(f"{where}: '{key}' must be a finite number, got {value!r}")
    return value


def section(data: dict, key: str, allowed: set, where: str, required: bool = True) -> dict:
    """The mapping under `key` ({} when it is absent and not `required`), holding only `allowed` keys."""
    value = data.get(key)
    if value is None:
        if required:
            raise AuroraError(f"{where}: missing key '{key}'")
        return {}
    if not isinstance(value, dict):
        raise AuroraError(f"{where}: '{key}' must be a mapping")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise AuroraError(f"{where}: unknown key '{key}.{unknown[0]}' (allowed: {', '.join(sorted(allowed))})")
    return value
