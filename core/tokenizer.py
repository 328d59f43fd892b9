"""The tokenizer every step shares: HF `tokenizers` files, the end-of-document token and its record.

StarCoder's tokenizer (and the project's own, from `aurora assets build`) ends each document with
`<|endoftext|>`; a recipe may name another token, which the tokenizer must have.
"""

import hashlib
import os
from functools import lru_cache

from core.errors import AuroraError
from core.storage import local_asset

EOD_TOKEN = "<|endoftext|>"


def file_sha256(f) -> str:
    """The sha256 of an open binary file, read in blocks."""
    digest = hashlib.sha256()
    for block in iter(lambda: f.read(1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def load_tokenizer(path: str):
    """A `tokenizer.json` (local, or by URI through this machine's asset cache); a file that is not
    one (or no file) is a one-line error. A process keeps the one it loaded last while its file is
    unchanged (the same device, inode, size and change times), and every caller shares it, so none
    may change its settings: a tokenizer loaded by each task left the last one's memory in the
    heap, and a pool worker's peak grew 4 MiB with each of its tokenize tasks (bench/curate.py's
    en, tasks of 25,000 documents: 202 MiB after the first, 226 after the sixth; 202 to 212 with
    one tokenizer)."""
    try:
        local = local_asset(path)
        status = os.stat(local)
        return _loaded_tokenizer(local, status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns)
    except AuroraError:
        raise
    except Exception as e:  # noqa: BLE001 - tokenizers raises a bare Exception for a malformed file
        raise AuroraError(f"cannot load tokenizer {path}: {' '.join(str(e).split())[:200]}") from None


@lru_cache(maxsize=1)
def _loaded_tokenizer(local: str, *file_identity: int):
    from tokenizers import Tokenizer

    return Tokenizer.from_file(local)


def eod_id(tokenizer, path: str, eod_token: str) -> int:
    """The id of the end-of-document token; a tokenizer without it is a one-line error."""
    if not isinstance(eod_token, str) or not eod_token:
        raise AuroraError(f"the end-of-document token must be a non-empty string, got {eod_token!r}")
    token_id = tokenizer.token_to_id(eod_token)
    if token_id is None:
        raise AuroraError(f"tokenizer {path} has no token {eod_token!r} for end of document")
    return token_id


def tokenizer_info(path: str, eod_token: str) -> dict:
    """What a manifest records of the tokenizer its shards were made with."""
    tokenizer = load_tokenizer(path)
    with open(local_asset(path), "rb") as f:
        sha = file_sha256(f)
    return {"path": path, "sha256": sha, "vocab_size": tokenizer.get_vocab_size(), "eod_id": tokenizer.token_to_id(eod_token)}
