"""A run's inputs: the files its sources' globs match, made absolute for workers started elsewhere,
and what tells a changed input apart (`run.json` pins them, `run.output`)."""

import os

import fsspec

from core.errors import AuroraError
from readers.records import input_format


def resolve_inputs(sources) -> list[tuple[str, str]]:
    """Every (source name, file) the sources' globs match (each source a `name` and its `paths`), sorted within each source. A file matched
    twice (two sources, overlapping globs) is refused: it would be read, and kept, twice."""
    inputs, seen = [], {}
    for source in sources:
        for pattern in source.paths:
            try:
                fs, _, paths = fsspec.core.get_fs_token_paths(pattern)
            except Exception as e:  # noqa: BLE001 - any backend error is reported on one line
                raise AuroraError(f"source '{source.name}': cannot list {pattern}: {e}") from None
            if not paths:
                raise AuroraError(f"source '{source.name}': no input files match {pattern}")
            for path in sorted(paths):
                full = fs.unstrip_protocol(path) if "://" in pattern else path
                try:
                    input_format(full)
                except ValueError as e:
                    raise AuroraError(f"source '{source.name}': {e}") from None
                if "://" not in full and not os.path.isfile(full):  # a device or a pipe never ends
                    raise AuroraError(f"source '{source.name}': {full} is not a regular file")
                if full in seen:
                    raise AuroraError(f"{full} is matched twice (sources '{seen[full]}' and '{source.name}'); "
                                      "it would be read twice")
                seen[full] = source.name
                inputs.append((source.name, full))
    return inputs


def absolute(path: str) -> str:
    """Local paths made absolute, so workers started elsewhere (Ray) find the same files."""
    return path if "://" in path else os.path.abspath(path)


def input_identity(source: str, path: str) -> dict:
    """What tells a changed input apart: its size and modification time (its ETag on object storage)."""
    fs, plain = fsspec.core.url_to_fs(path)
    info = fs.info(plain)
    changed = info.get("ETag") or info.get("mtime") or info.get("LastModified") or info.get("created")
    return {"source": source, "path": path, "size": info.get("size"), "modified": str(changed)}
