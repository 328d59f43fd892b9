"""Files written whole or not at all: a temporary name, then a rename (local or object storage).

A crash or a full disk leaves at worst a `.tmp` file beside the target, never a truncated target
that a rerun would trust. Every output of a run is written through `AtomicFile`.
"""

import fsspec

LOCAL = fsspec.filesystem("file")  # the folder for plain local paths


class AtomicFile:
    """A binary file written as `<path>.tmp` in `folder` (a datatrove DataFolder or any fsspec
    filesystem; `LOCAL` for a plain path) and renamed to `path` by `commit`. As a context manager
    it commits when the block succeeds and removes the temporary file when it fails."""

    def __init__(self, folder, path: str):
        self.folder, self.path, self.tmp = folder, path, path + ".tmp"
        self.file = folder.open(self.tmp, "wb")

    def write(self, data: bytes) -> int:
        return self.file.write(data)

    def commit(self) -> None:
        self.file.close()
        self.folder.mv(self.tmp, self.path)

    def discard(self) -> None:
        try:
            self.file.close()
        except OSError:  # a full disk fails the close too
            pass
        try:
            self.folder.rm(self.tmp)
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.commit()
        else:
            self.discard()


def write_atomic(folder, path: str, data: bytes) -> None:
    """Write `data` to `path` in `folder`, whole or not at all."""
    with AtomicFile(folder, path) as f:
        f.write(data)
