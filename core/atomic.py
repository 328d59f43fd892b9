"""Small files written whole or not at all: a temporary name, then a rename (local or object storage).

A crash or a full disk leaves at worst a `.tmp` file beside the target, never a truncated target
that a rerun would trust.
"""


def write_atomic(folder, path: str, data: bytes) -> None:
    """Write `data` to `path` in `folder` (a datatrove DataFolder or any fsspec filesystem)."""
    tmp = path + ".tmp"
    try:
        with folder.open(tmp, "wb") as f:
            f.write(data)
    except BaseException:
        try:
            folder.rm(tmp)
        except OSError:
            pass
        raise
    folder.mv(tmp, path)
