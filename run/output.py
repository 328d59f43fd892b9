"""A run's output folder: `run.json` pins it to one run (its recipe's sha256 and its inputs'
identities), so that a rerun resumes only the same work and two runs never mix in one folder."""

import orjson

from core.atomic import write_atomic
from core.errors import AuroraError
from core.storage import uri

RUN_FILE = "run.json"
MAX_RUN_FILE_BYTES = 1 << 28  # bounded like a manifest: the folder may hold a huge file, or a link to a device


def read_run_file(folder, remedy: str) -> dict | None:
    """The folder's `run.json` as `claim_output` writes it (None where there is none): an object
    holding the recipe's sha256 and `inputs`, each input's identity with its source and path (a
    mix's also names its pools). Anything else was damaged or written by something else: one line,
    ending in `remedy` (what the caller's user can do about it)."""
    if not folder.exists(RUN_FILE):
        return None
    with folder.open(RUN_FILE, "rb") as f:
        raw = f.read(MAX_RUN_FILE_BYTES + 1)
    try:
        run = orjson.loads(raw) if len(raw) <= MAX_RUN_FILE_BYTES else None
    except orjson.JSONDecodeError:
        run = None
    if not isinstance(run, dict):
        problem = "not a JSON object"
    elif not isinstance(run.get("recipe_sha256"), str):
        problem = "no recipe_sha256 string"
    elif not isinstance(run.get("inputs"), list) or \
            not all(isinstance(i, dict) and isinstance(i.get("path"), str) and isinstance(i.get("source"), str) for i in run["inputs"]):
        problem = "inputs is not a list of objects with a source and a path"
    else:
        return run
    raise AuroraError(f"{uri(folder)}/{RUN_FILE} is not a run's record ({problem}); {remedy}")


def claim_output(folder, run: dict) -> None:
    """Refuse to mix two different runs in one folder; a rerun of the same run resumes."""
    previous = read_run_file(folder, "use a new --output or delete it")
    if previous is not None:
        if previous == run:
            return
        where = f"{uri(folder)} holds a run of"
        if previous["recipe_sha256"] != run["recipe_sha256"]:
            raise AuroraError(f"{where} another recipe; use a new --output or delete it")
        before = {i["path"]: i for i in previous["inputs"]}
        for now in run.get("inputs", []):
            was = before.get(now["path"])
            if was is not None and was != now:
                raise AuroraError(f"input {now['path']} changed since {uri(folder)} was started (size {was.get('size')} "
                                  f"-> {now['size']}, modified {was.get('modified')} -> {now['modified']}); "
                                  "use a new --output or delete it")
        raise AuroraError(f"{where} other inputs or pools; use a new --output or delete it")
    try:
        write_atomic(folder, RUN_FILE, orjson.dumps(run, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2))
    except NotImplementedError:  # fsspec's answer for a read-only protocol (http://): the first write says so
        raise AuroraError(f"cannot write to {uri(folder)}: its storage is read-only") from None
