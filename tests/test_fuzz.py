"""Structure-aware fuzzing of WARC files, recipes, stage recipes and training configs: mutations of
valid files that aim at their structure (a record's Content-Length, blank lines and version lines;
YAML aliases, types, key collisions, truncation). Each case ends in counted rejects with every
intact record still read, or one bounded `aurora: error:` line, or a correct load; never another
exception. (Byte-level fuzzing of JSONL, gzip, zstd and parquet inputs is in test_hostile_input.py;
of checkpoint shards in test_train.py.)"""

import gzip
import random
import re
from collections import Counter

import pytest
import yaml
from test_warc import Warc, _page, _read, _text

from core.errors import AuroraError
from pipeline.mix import load_stage_recipe
from pipeline.recipe import load_recipe
from trainer.config import load_config

# --- WARC ----------------------------------------------------------------------------------------

RECORD_START = re.compile(rb"WARC/1\.0\r\n")


def _warc(compress: bool, pages: int) -> tuple[bytes, list[bytes]]:
    """A WARC of `pages` responses (each after its request), as its file bytes and its records' bytes."""
    warc = Warc(compress=False)
    for i in range(pages):
        warc.response(f"https://example.com/{i}", _page(_text("en", (i % 12) * 5)))
    data = warc.buffer.getvalue()
    starts = [m.start() for m in RECORD_START.finditer(data)] + [len(data)]
    return data, [data[a:b] for a, b in zip(starts, starts[1:])]


def _mutate_record(record: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One record damaged where its framing lies: (its bytes, the kind of damage)."""
    kind = rng.choice(["length_digit_added", "length_digit_removed", "length_18_digits", "length_zero",
                       "header_blank_line_lost", "version_line_damaged", "cut_short", "bytes_flipped"])
    length = re.search(rb"Content-Length: (\d+)", record)
    if kind == "length_digit_added":
        record = record[:length.start(1)] + str(rng.randrange(1, 10)).encode() + record[length.start(1):]
    elif kind == "length_digit_removed":
        record = record[:length.start(1)] + record[length.start(1) + 1:]
    elif kind == "length_18_digits":
        record = record[:length.start(1)] + b"9" * 18 + record[length.end(1):]
    elif kind == "length_zero":
        record = record[:length.start(1)] + b"0" + record[length.end(1):]
    elif kind == "header_blank_line_lost":
        record = record.replace(b"\r\n\r\n", b"\r\n", 1)
    elif kind == "version_line_damaged":
        record = rng.choice([b"WARC/2.0", b"WARX/1.0", b"WARC/1.0 x"]) + record[len(b"WARC/1.0"):]
    elif kind == "cut_short":
        record = record[:rng.randrange(1, len(record))]
    else:
        record = bytearray(record)
        for _ in range(rng.randint(1, 16)):
            record[rng.randrange(len(record))] = rng.randrange(256)
        record = bytes(record)
    return record, kind


def test_fuzzed_warc_files_lose_no_intact_record(tmp_path):
    """Records damaged one or more at a time, in .warc and .warc.gz: every response whose own record and
    request are intact is read as its document, the funnel balances, and nothing raises."""
    rng = random.Random(26)
    _, records = _warc(False, 12)
    outcomes, kinds = Counter(), Counter()
    for case in range(48):
        compress = case % 2 == 1
        damaged = set(rng.sample(range(1, len(records)), rng.randint(1, 3)))  # record 0 is the warcinfo
        parts = []
        for i, record in enumerate(records):
            if i in damaged:
                record, kind = _mutate_record(record, rng)
                kinds[kind] += 1
            parts.append(gzip.compress(record, mtime=0) if compress else record)  # a gzip member per record, as crawlers write
        path = tmp_path / f"fuzz{case}.warc{'.gz' if compress else ''}"
        path.write_bytes(b"".join(parts))
        docs, ledger, _ = _read(tmp_path, path)  # the funnel balances, rejects counted by reason
        # Records come in pairs, request then response: response k is record 2 + 2k.
        intact = {f"https://example.com/{k}" for k in range(12) if not {1 + 2 * k, 2 + 2 * k} & damaged}
        read = {d.metadata["fields"]["url"] for d in docs}
        assert intact <= read, (case, sorted(intact - read), sorted(damaged))
        outcomes["warc.gz" if compress else "warc", "rejects" if ledger["malformed"] or ledger["removed"] else "none"] += 1
    print(f"\nfuzz WARC: 48 files, no intact record lost; by format {dict(sorted(outcomes.items()))}; damage {dict(sorted(kinds.items()))}")


# --- recipes, stage recipes, training configs ------------------------------------------------------

ODD_VALUES = [None, True, 0, -1, 2**80, 1.5e308, float("nan"), "", "x" * 3000, [], [1, [2]], {}, {"a": {"b": None}},
              "../../etc/passwd", "s3://", "\u0000"]


def _paths(tree, prefix=()):
    """Every path into a parsed YAML tree, its root excluded."""
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        yield prefix + (key,)
        yield from _paths(value, prefix + (key,))


def _set(tree, path, value):
    for key in path[:-1]:
        tree = tree[key]
    if value is _DELETE:
        del tree[path[-1]]
    else:
        tree[path[-1]] = value


_DELETE = object()


def _mutate_yaml(text: str, rng: random.Random) -> tuple[str, str]:
    """One structure-aware mutation of a YAML file: (its text, the kind)."""
    kind = rng.choice(["type", "delete", "unknown_key", "alias", "alias_bomb", "key_collision", "truncate", "key_type"])
    if kind == "truncate":
        return text[:rng.randrange(len(text))], kind
    if kind == "key_collision":  # a top-level key again, with another value
        key = rng.choice([line.split(":")[0] for line in text.splitlines() if re.match(r"[a-z_]+:", line)])
        return text + f"\n{key}: {rng.choice(['1', 'x', '[]'])}\n", kind
    if kind == "alias_bomb":
        lines = ["a0: &a0 [x, x, x, x, x, x, x, x]"] + [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 12)]
        return "\n".join(lines) + "\n" + text, kind
    if kind == "key_type":
        return text + rng.choice(["\n? [a, b]\n: 1\n", "\n1: x\n", "\nnull: x\n", "\n? {a: 1}\n: 2\n"]), kind
    tree = yaml.safe_load(text)
    path = rng.choice(list(_paths(tree)))
    if kind == "alias":  # a node replaced by an alias of another node: YAML's sharing, refused or taken as a copy
        anchor = rng.choice(list(_paths(tree)))
        dumped = yaml.safe_dump({"anchor": _get(tree, anchor)}, sort_keys=False)
        _set(tree, path, "ALIAS_HERE")
        body = yaml.safe_dump(tree, sort_keys=False).replace("ALIAS_HERE", "*shared", 1)
        return dumped.replace("anchor:", "anchor: &shared", 1) + body, kind
    if kind == "type":
        _set(tree, path, rng.choice(ODD_VALUES))
    elif kind == "delete":
        _set(tree, path, _DELETE)
    else:
        parent = _get(tree, path[:-1]) if len(path) > 1 else tree
        (parent if isinstance(parent, dict) else tree)["unknown_key_" + str(rng.randrange(100))] = 1
    return yaml.safe_dump(tree, sort_keys=False, allow_unicode=True), kind


def _get(tree, path):
    for key in path:
        tree = tree[key]
    return tree


@pytest.mark.parametrize("loader, files", [
    (load_recipe, ["recipes/demo/en.yaml", "recipes/demo/ja.yaml", "recipes/demo/code.yaml", "recipes/en.yaml"]),
    (load_stage_recipe, ["recipes/demo/cap.yaml", "recipes/demo/cat.yaml", "recipes/cat.yaml"]),
    (load_config, ["recipes/demo/train-cap.yaml", "recipes/demo/train-cat.yaml"]),
], ids=["recipe", "stage recipe", "train config"])
def test_fuzzed_yaml_files_load_or_are_one_bounded_line(in_workspace, tmp_path, loader, files):
    rng = random.Random(loader.__name__)  # a str seed is hashed the same in every process
    outcomes, kinds = Counter(), Counter()
    for case in range(150):
        text, kind = _mutate_yaml((in_workspace / rng.choice(files)).read_text(), rng)
        path = tmp_path / f"fuzz{case}.yaml"
        path.write_text(text)
        try:
            loader(str(path))
            outcomes["loaded"] += 1
        except AuroraError as e:
            message = str(e)
            assert "\n" not in message and len(message) <= 1500, (kind, message[:3000])
            outcomes["one line"] += 1
        kinds[kind] += 1
    assert outcomes["one line"] > 0
    print(f"\nfuzz {loader.__name__}: 150 mutated files, {dict(outcomes)}; mutations {dict(sorted(kinds.items()))}")
