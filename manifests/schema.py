"""The one manifest schema, for pools and stages: the keys each kind holds, the type of each value,
and that every path a manifest names is relative inside its folder.

Building checks what it is about to write (`write_manifest`), and every reader checks what it
loads (`load_manifest`: audit, show, report, mix, the trainer), so a manifest is never used or
written in a shape the others do not expect.
"""

from core.config import NAME
from core.rejects import rejects_file


def _is_integer(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_counts(value) -> bool:
    return isinstance(value, dict) and all(_is_integer(n) and n >= 0 for n in value.values())


# (test, what it accepts, as the problem line says it)
TEXT = (lambda v: isinstance(v, str), "a string")
NAME_TEXT = (lambda v: isinstance(v, str) and NAME.fullmatch(v) is not None, "a file name (letters, digits, '.', '_', '-')")
COUNT = (lambda v: _is_integer(v) and v >= 0, "a non-negative integer")
INTEGER = (_is_integer, "an integer")
NUMBER = (lambda v: isinstance(v, (int, float)) and not isinstance(v, bool), "a number")
FLAG = (lambda v: isinstance(v, bool), "true or false")
SHA256 = (lambda v: isinstance(v, str) and len(v) == 64 and all(c in "0123456789abcdef" for c in v), "a sha256 hex digest")
OBJECT = (lambda v: isinstance(v, dict), "an object")
LIST = (lambda v: isinstance(v, list), "a list")
COUNTS = (_is_counts, "an object of non-negative integers")
TOKEN_ID = (lambda v: v is None or (_is_integer(v) and v >= 0), "a token id or null")

_COMMON = {"kind": TEXT, "name": NAME_TEXT, "tokenizer": OBJECT, "recipe_sha256": SHA256, "shards": LIST, "totals": OBJECT}
_KIND_KEYS = {"pool": {"language": TEXT, "inputs": LIST, "funnel": OBJECT},
              "stage": {"language": TEXT, "seed": INTEGER, "components": LIST}}
_INPUT = {"source": TEXT, "path": TEXT}  # path: where the run read it (a local path or a URI), never opened from the manifest
_TOKENIZER = {"path": TEXT, "sha256": SHA256, "vocab_size": COUNT, "eod_id": TOKEN_ID}
_TOTALS = {"documents": COUNT, "tokens": COUNT}
_SHARD = {"prefix": TEXT, "bin_sha256": SHA256, "idx_sha256": SHA256, "documents": COUNT, "tokens": COUNT}
_CHECKSUMMED_FILE = {"path": TEXT, "sha256": SHA256}
_SIGNALS_FILE = {"path": TEXT, "sha256": SHA256, "documents": COUNT}
_FUNNEL = {"documents_in": COUNT, "malformed": COUNTS, "removed": COUNTS, "kept": COUNT}
_COMPONENT = {"name": NAME_TEXT, "language": TEXT, "pool": OBJECT, "budget_tokens": COUNT, "tokens": COUNT, "documents": COUNT,
              "epochs": NUMBER, "share": NUMBER, "planned_share": NUMBER}
_EVAL_SET = {"name": NAME_TEXT, "path": TEXT, "sha256": SHA256, "items": COUNT}
RATIO = (lambda v: v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0), "a non-negative number or null")
_FERTILITY = {"documents": COUNT, "tokens": COUNT, "words": COUNT, "characters": COUNT, "tokens_per_word": RATIO,
              "tokens_per_character": RATIO}
_CUTOFF = {"cutoff": NUMBER, "fraction": NUMBER, "sample_documents": COUNT}
_COMPONENT_POOL = {"path": TEXT, "in_stage": FLAG, "manifest_sha256": SHA256, "shards": LIST}
# The signals basis (`pipeline.passes.signals_basis`), which `aurora refilter` compares key by key with a recipe's.
_BASIS = {"language": TEXT, "read": OBJECT, "tokenizer": OBJECT}
_BASIS_READ = {"max_document_bytes": COUNT, "unit_bytes": COUNT}
_BASIS_TOKENIZER = {"sha256": SHA256, "eod_token": TEXT}
_BASIS_TEXT = {"lid_model": SHA256, "heuristics": OBJECT}
_BASIS_CODE = {"code": OBJECT}
_BASIS_OPTIONAL = {"perplexity": {"sp_model": SHA256, "kenlm_model": SHA256, "strip_accents": FLAG},
                   "dedup": {"num_perm": COUNT, "seed": COUNT, "ngram": COUNT, "shingle_sets": FLAG}}
_BASIS_VALUES = {"url_filter": LIST, "decontamination": LIST, "flagged_words": SHA256}


def path_problem(path) -> str | None:
    """Why `path` is not a relative path inside the manifest's folder (the only kind a manifest
    may name: it is joined to that folder and opened), or None when it is one."""
    if not isinstance(path, str) or not path:
        return "must be a non-empty string"
    if "://" in path or path.startswith(("/", "\\")) or (len(path) > 1 and path[1] == ":") or any(c < " " for c in path):
        return f"{path!r} must be a relative path inside the manifest's folder"
    if ".." in path.replace("\\", "/").split("/"):
        return f"{path!r} must not leave the manifest's folder"
    return None


def _fields(value, where: str, fields: dict, problems: list[str]) -> bool:
    """Is `value` an object holding every key of `fields`, each of the type it names? Problems are appended."""
    if not isinstance(value, dict):
        problems.append(f"{where} must be an object")
        return False
    ok = True
    for key, (test, what) in fields.items():
        if key not in value:
            problems.append(f"{where} has no '{key}'")
            ok = False
        elif not test(value[key]):
            problems.append(f"{where}.{key} must be {what}")
            ok = False
    return ok


def _path(value: dict, key: str, where: str, problems: list[str]) -> None:
    reason = path_problem(value[key])
    if reason:
        problems.append(f"{where}.{key} {reason}")


def _files(files, where: str, fields: dict, problems: list[str]) -> list[tuple[int, dict]]:
    """A list of files, each an object holding `fields`, its path relative inside the manifest's
    folder. Returns the entries that are, with their places."""
    if not isinstance(files, list):
        problems.append(f"{where} must be a list")
        return []
    usable = []
    for i, entry in enumerate(files):
        if _fields(entry, f"{where}[{i}]", fields, problems):
            reason = path_problem(entry["path"])
            if reason:
                problems.append(f"{where}[{i}].path {reason}")
            else:
                usable.append((i, entry))
    return usable


def _shards(shards: list, where: str, problems: list[str], lineage: bool) -> None:
    for i, shard in enumerate(shards):
        here = f"{where}[{i}]"
        if not _fields(shard, here, _SHARD, problems):
            continue
        _path(shard, "prefix", here, problems)
        if lineage and _fields(shard, here, {"lineage": OBJECT}, problems) \
                and _fields(shard["lineage"], f"{here}.lineage", _CHECKSUMMED_FILE, problems):
            _path(shard["lineage"], "path", f"{here}.lineage", problems)


def _basis(basis: dict, problems: list[str]) -> None:
    """The signals basis: the keys every run records and those of its steps, each of the type it is written as."""
    if not _fields(basis, "signals.basis", _BASIS, problems):
        return
    _fields(basis["read"], "signals.basis.read", _BASIS_READ, problems)
    _fields(basis["tokenizer"], "signals.basis.tokenizer", _BASIS_TOKENIZER, problems)
    text = basis["language"] != "code"
    if _fields(basis, "signals.basis", _BASIS_TEXT if text else _BASIS_CODE, problems) and text:
        for group, settings in basis["heuristics"].items():
            if not isinstance(settings, dict):
                problems.append(f"signals.basis.heuristics.{group} must be an object")
    for key, fields in _BASIS_OPTIONAL.items():
        if key in basis:
            _fields(basis[key], f"signals.basis.{key}", fields, problems)
    for key, (test, what) in _BASIS_VALUES.items():
        if key in basis and not test(basis[key]):
            problems.append(f"signals.basis.{key} must be {what}")


def manifest_problems(manifest) -> list[str]:
    """The manifest's shape, checked before anything reads it: the keys and types its kind (pool or
    stage) requires, and every path it names a relative one inside its folder. [] when usable."""
    if not isinstance(manifest, dict):
        return [f"the manifest must be a JSON object, not {type(manifest).__name__}"]
    kind = manifest.get("kind")
    if kind not in _KIND_KEYS:
        return [f"unknown manifest kind {kind!r}"]
    problems: list[str] = []
    if not _fields(manifest, "manifest", _COMMON | _KIND_KEYS[kind], problems):
        return problems
    _fields(manifest["tokenizer"], "tokenizer", _TOKENIZER, problems)
    _fields(manifest["totals"], "totals", _TOTALS, problems)
    _shards(manifest["shards"], "shards", problems, lineage=kind == "stage")
    if "decontamination" in manifest:  # the evaluation sets its documents were checked against (a record: path is where it was read)
        if isinstance(manifest["decontamination"], list):
            for i, entry in enumerate(manifest["decontamination"]):
                _fields(entry, f"decontamination[{i}]", _EVAL_SET, problems)
        else:
            problems.append("manifest.decontamination must be a list")
    if kind == "pool":
        for i, entry in enumerate(manifest["inputs"]):
            _fields(entry, f"inputs[{i}]", _INPUT, problems)
        _fields(manifest["funnel"], "funnel", _FUNNEL, problems)
        if "perplexity_buckets" in manifest["funnel"] and not _is_counts(manifest["funnel"]["perplexity_buckets"]):
            problems.append(f"funnel.perplexity_buckets must be {COUNTS[1]}")
        if "redactions" in manifest and not _is_counts(manifest["redactions"]):
            problems.append(f"redactions must be {COUNTS[1]}")
        if "cutoffs" in manifest:  # a step's cut-off from the sampling pass (a quality classifier's top fraction)
            if isinstance(manifest["cutoffs"], dict):
                for step, cutoff in manifest["cutoffs"].items():
                    _fields(cutoff, f"cutoffs.{step}", _CUTOFF, problems)
            else:
                problems.append("manifest.cutoffs must be an object")
        if "fertility" in manifest and _fields(manifest["fertility"], "fertility", {"sources": OBJECT, "total": OBJECT}, problems):
            for source, entry in manifest["fertility"]["sources"].items():
                _fields(entry, f"fertility.sources.{source}", _FERTILITY, problems)
            _fields(manifest["fertility"]["total"], "fertility.total", _FERTILITY, problems)
        if "rejects" in manifest:  # their sha256 (manifests written before they were recorded hold none)
            for i, entry in _files(manifest["rejects"], "rejects", _CHECKSUMMED_FILE, problems):
                if rejects_file(entry["path"]) is None:
                    problems.append(f"rejects[{i}].path {entry['path']!r} is not a rejects file of a run")
        if "dedup" in manifest and _fields(manifest["dedup"], "dedup", {"clusters_file": OBJECT, "clusters": COUNT}, problems):
            if _fields(manifest["dedup"]["clusters_file"], "dedup.clusters_file", _CHECKSUMMED_FILE, problems):
                _path(manifest["dedup"]["clusters_file"], "path", "dedup.clusters_file", problems)
            if "files" in manifest["dedup"]:  # the filter pass's, as `rejects`
                _files(manifest["dedup"]["files"], "dedup.files", _CHECKSUMMED_FILE, problems)
        if "signals" in manifest and _fields(manifest["signals"], "signals", {"basis": OBJECT, "files": LIST}, problems):
            _basis(manifest["signals"]["basis"], problems)
            _files(manifest["signals"]["files"], "signals.files", _SIGNALS_FILE, problems)
        return problems
    if "validation" in manifest:
        if isinstance(manifest["validation"], list):
            _shards(manifest["validation"], "validation", problems, lineage=False)
        else:
            problems.append("manifest.validation must be a list")
    for i, component in enumerate(manifest["components"]):
        here = f"components[{i}]"
        if "budget_words" in component:  # a budget given in words, with the pool's tokens per word that converted it
            _fields(component, here, {"budget_words": COUNT, "tokens_per_word": NUMBER}, problems)
        if not _fields(component, here, _COMPONENT, problems) \
                or not _fields(component["pool"], f"{here}.pool", _COMPONENT_POOL, problems):
            continue
        pool = component["pool"]
        if pool["in_stage"]:  # inside the stage's folder; a curated pool's path is where the recipe found it
            _path(pool, "path", f"{here}.pool", problems)
        for j, prefix in enumerate(pool["shards"]):  # relative to the pool's folder
            reason = path_problem(prefix)
            if reason:
                problems.append(f"{here}.pool.shards[{j}] {reason}")
    return problems


