"""Where things are: a folder's full address, and remote assets made local.

- `uri`: a folder's path with its protocol (`s3://bucket/run`), for every message and every path
  built from a folder. A DataFolder's `.path` drops the protocol, so a path built from it alone
  would name the local disk: the wrong data, or an error naming the wrong place.
- `local_asset`: a model or tokenizer named by URI (`s3://bucket/assets/lid.176.ftz`) is fetched once
  per machine into a cache keyed by its sha256, which comes from the `assets.json` beside it (as
  `aurora assets build` writes it). A copy is used only after its sha256 matched, so a damaged or
  changed object is refused, never loaded; every machine of a cluster fetches its own copy. The
  cache holds the bytes assets.json names: an asset replaced in the bucket is used once its new
  sha256 is in assets.json.
"""

import hashlib
import os
import posixpath
import uuid

import fsspec
import orjson

from core.errors import AuroraError

ASSETS_RECORD = "assets.json"
CACHE_ENV = "AURORA_ASSET_CACHE"
_CHUNK = 1 << 20


def uri(folder) -> str:
    """A DataFolder's (or any fsspec DirFileSystem's) address with its protocol; local paths stay plain."""
    protocol = folder.fs.protocol
    protocol = protocol[0] if isinstance(protocol, (tuple, list)) else protocol
    return folder.path if protocol in ("file", "local") else f"{protocol}://{folder.path}"


def is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def cache_folder() -> str:
    return os.environ.get(CACHE_ENV) or os.path.join(os.path.expanduser("~"), ".cache", "aurora", "assets")


def _expected_sha256(fs, path: str, address: str) -> str:
    """The sha256 that the nearest `assets.json` above the asset (its folder, then each parent) lists for it."""
    folder = posixpath.dirname(path)
    while True:
        record_path = posixpath.join(folder, ASSETS_RECORD)
        if fs.exists(record_path):
            with fs.open(record_path, "rb") as f:
                try:
                    files = orjson.loads(f.read(1 << 24)).get("files", {})
                except (orjson.JSONDecodeError, AttributeError):
                    raise AuroraError(f"{fs.unstrip_protocol(record_path)}: not a valid {ASSETS_RECORD}") from None
            entry = files.get(posixpath.relpath(path, folder)) if isinstance(files, dict) else None
            sha = entry.get("sha256") if isinstance(entry, dict) else None
            if isinstance(sha, str) and len(sha) == 64:
                return sha.lower()
            raise AuroraError(f"{fs.unstrip_protocol(record_path)} lists no sha256 for {address}")
        parent = posixpath.dirname(folder)
        if parent == folder or not parent:
            raise AuroraError(f"{address}: no {ASSETS_RECORD} with its sha256 in its folder or above "
                              "(a remote asset is used only when its sha256 is known)")
        folder = parent


def local_asset(path: str) -> str:
    """A local path for the asset: itself when local, else its verified copy in this machine's cache."""
    if not is_remote(path):
        return path
    try:
        fs, plain = fsspec.core.url_to_fs(path)
        if not fs.isfile(plain):
            raise AuroraError(f"asset {path} is a folder: only files are fetched from object storage, so a model folder must be "
                              "on a local or shared disk" if fs.isdir(plain) else f"asset {path} not found")
        sha = _expected_sha256(fs, plain, path)
        local = os.path.join(cache_folder(), sha, posixpath.basename(plain))
        if os.path.isfile(local):  # only a verified copy is ever renamed into place
            return local
        os.makedirs(os.path.dirname(local), exist_ok=True)
        tmp = f"{local}.{uuid.uuid4().hex}.tmp"  # tasks on one machine may fetch at once
        digest = hashlib.sha256()
        try:
            with fs.open(plain, "rb") as src, open(tmp, "wb") as dst:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    dst.write(chunk)
            if digest.hexdigest() != sha:
                raise AuroraError(f"asset {path}: sha256 {digest.hexdigest()} differs from {sha} in its {ASSETS_RECORD}")
            os.replace(tmp, local)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        return local
    except AuroraError:
        raise
    except Exception as e:  # noqa: BLE001 - an unreachable bucket, a full cache disk: one line
        raise AuroraError(f"asset {path}: cannot fetch it ({type(e).__name__}: {' '.join(str(e).split())[:200]})") from None


MAX_LIST_BYTES = 1 << 30  # a word list, blocklist or evaluation set is read whole, once per task


def read_list_file(path: str, what: str) -> bytes:
    """The bytes of a list or evaluation file a filter reads whole (local, or a verified remote
    asset): a regular file of at most `MAX_LIST_BYTES`, else one line saying what is wrong (a pipe
    or a device would never end)."""
    local = local_asset(path)
    if not os.path.exists(local):
        raise AuroraError(f"{what} {path} not found")
    if not os.path.isfile(local):
        raise AuroraError(f"{what} {path} is not a regular file")
    try:
        with open(local, "rb") as f:
            raw = f.read(MAX_LIST_BYTES + 1)
    except OSError as e:
        raise AuroraError(f"cannot read {what} {path}: {e.strerror}") from None
    if len(raw) > MAX_LIST_BYTES:
        raise AuroraError(f"{what} {path} is larger than {MAX_LIST_BYTES:,} bytes")
    return raw


def list_lines(path: str, what: str):
    """(line number, text) of each entry line of a list file (`read_list_file`): UTF-8, a
    byte-order mark skipped, each line stripped, blank lines and `#` comments left out; a line
    that is not UTF-8 is an error naming the file and line."""
    raw = read_list_file(path, what)
    for number, line in enumerate(raw.removeprefix(b"\xef\xbb\xbf").split(b"\n"), start=1):  # 0x0A occurs in no UTF-8 sequence
        try:
            text = line.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise AuroraError(f"{path}:{number}: not UTF-8") from None
        if text and not text.startswith("#"):
            yield number, text
