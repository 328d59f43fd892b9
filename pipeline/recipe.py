"""Curation recipes: YAML files that say what to read, how to filter it and where the shards go.

Validation happens once, up front, so a bad recipe fails with one line before any work starts.
Relative paths are taken from the current directory (the project root for `make` targets).
"""

import hashlib
from dataclasses import dataclass
from typing import TypeVar

from core.config import NAME, integer, number, read_yaml, section
from core.errors import AuroraError
from core.tokenizer import EOD_TOKEN
from filters.base import FilterConfig, RecipeContext
from filters.registry import FILTERS
from readers.html_text import DEFAULT_EXTRACTOR, EXTRACTORS

TEXT_LANGUAGES = ("en", "fi", "hi", "ja", "vi")
LANGUAGES = TEXT_LANGUAGES + ("code",)
F = TypeVar("F", bound=FilterConfig)


@dataclass(frozen=True)
class Source:
    name: str
    paths: tuple[str, ...]


@dataclass(frozen=True)
class Recipe:
    """A checked curation recipe, an immutable value: a command that points it elsewhere makes
    another (`dataclasses.replace`)."""

    path: str
    sha256: str
    name: str
    language: str
    sources: tuple[Source, ...]
    output: str
    tokenizer: str
    filters: tuple[FilterConfig, ...] = ()  # the configs of its filters, in run order (`filters.registry`)
    dedup: dict | None = None  # threshold, num_perm, ngram, seed, bands, rows, memory_mb, recall, verify
    eod_token: str = EOD_TOKEN
    max_shard_tokens: int = 1 << 27
    batch_size: int = 1000
    max_document_bytes: int = 8 << 20  # larger records are removed unread (readers.records)
    extractor: str = DEFAULT_EXTRACTOR  # how an HTML page of WARC input becomes text (readers.html_text)
    # A task reads one work unit of about this many bytes (readers.records.work_units). 256 MiB
    # is minutes of one worker's filtering and tokenizing (some 50,000 to 100,000 web documents),
    # so a killed task loses little and one large file spreads over many workers, while units stay
    # few (4,000 per TB) and the per-task costs (its models, logs, shards, dedup files) small.
    unit_bytes: int = 256 << 20

    def filter(self, kind: type[F]) -> F | None:
        """The recipe's config of the filter `kind`, or None when it does without it."""
        return next((f for f in self.filters if isinstance(f, kind)), None)


BASE_KEYS = {"name", "language", "sources", "output", "assets", "read", "tokenize", "dedup"}


def load_recipe(path: str) -> Recipe:
    raw, data = read_yaml(path, "recipe")
    allowed = BASE_KEYS | {key for config in FILTERS for key in (config.section, *config.more_sections)}
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise AuroraError(f"{path}: unknown key '{unknown[0]}' (allowed: {', '.join(sorted(allowed))})")
    for key in ("name", "language", "output"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise AuroraError(f"{path}: '{key}' must be a non-empty string")
    if not NAME.fullmatch(data["name"]):
        raise AuroraError(f"{path}: 'name' must be a file name of letters, digits, '.', '_' and '-', got {data['name']!r}")
    language = data["language"]
    if language not in LANGUAGES:
        raise AuroraError(f"{path}: language '{language}' is not one of {', '.join(LANGUAGES)}")

    sources = data.get("sources")
    if not isinstance(sources, list) or not sources:
        raise AuroraError(f"{path}: 'sources' must be a non-empty list")
    parsed_sources = []
    for i, source in enumerate(sources):
        where = f"{path}: sources[{i}]"
        if not isinstance(source, dict) or set(source) - {"name", "paths"}:
            raise AuroraError(f"{where} must be a mapping with 'name' and 'paths'")
        paths = source.get("paths")
        if isinstance(paths, str):
            paths = [paths]
        if not isinstance(source.get("name"), str) or not isinstance(paths, list) or not paths \
                or not all(isinstance(p, str) and p for p in paths):
            raise AuroraError(f"{where} needs a string 'name' and a non-empty list of path globs 'paths'")
        parsed_sources.append(Source(source["name"], tuple(paths)))

    assets = section(data, "assets", {"tokenizer"} | {key for config in FILTERS for key in config.assets}, path)
    if not isinstance(assets.get("tokenizer"), str):
        raise AuroraError(f"{path}: missing key 'assets.tokenizer'")
    settings = {}

    tokenize = section(data, "tokenize", {"eod_token", "max_shard_tokens", "batch_size"}, path, required=False)
    settings["eod_token"] = tokenize.get("eod_token", EOD_TOKEN)
    if not isinstance(settings["eod_token"], str) or not settings["eod_token"]:
        raise AuroraError(f"{path}: 'tokenize.eod_token' must be a non-empty string")
    # A shard's token count is an int32 sum in the index; a batch is held in memory.
    for key, high in (("max_shard_tokens", (1 << 31) - 1), ("batch_size", 1 << 20)):
        if key in tokenize:
            settings[key] = integer(tokenize[key], f"tokenize.{key}", path, 1, high)

    read = section(data, "read", {"max_document_bytes", "unit_bytes", "extractor"}, path, required=False)
    if "max_document_bytes" in read:  # a document is held whole by the filters: at most 1 GiB
        settings["max_document_bytes"] = integer(read["max_document_bytes"], "read.max_document_bytes", path, 1, 1 << 30)
    if "unit_bytes" in read:  # below 4 KiB a unit is a handful of records; 1 TiB is a file never split
        settings["unit_bytes"] = integer(read["unit_bytes"], "read.unit_bytes", path, 4 << 10, 1 << 40)
    if "extractor" in read:
        if read["extractor"] not in EXTRACTORS:
            raise AuroraError(f"{path}: 'read.extractor' must be one of {', '.join(EXTRACTORS)}, not {read['extractor']!r}")
        settings["extractor"] = read["extractor"]

    return Recipe(path=path, sha256=hashlib.sha256(raw).hexdigest(), name=data["name"], language=language,
                  sources=tuple(parsed_sources), output=data["output"], tokenizer=assets["tokenizer"],
                  filters=_filters(data, assets, language, path), dedup=_dedup(data, path), **settings)


def _filters(data: dict, assets: dict, language: str, path: str) -> tuple[FilterConfig, ...]:
    """Each filter of the registry that the recipe's kind (text or code) has, read from its section;
    a section or asset that only the other kind has is refused, as the recipe would ignore it."""
    kind = "code" if language == "code" else "text"
    mine = [config for config in FILTERS if kind in config.languages]
    sections = {key for config in mine for key in (config.section, *config.more_sections)}
    for config in FILTERS:
        if config in mine:
            continue
        other = "the code recipe" if kind == "text" else "text recipes"
        none = f"a {language} recipe has none" if kind == "text" else "the code recipe has none"
        if config.section in data and config.section not in sections:
            raise AuroraError(f"{path}: '{config.section}' is for {other}; {none}")
        for key in config.assets:
            if key in assets and all(key not in c.assets for c in mine):
                raise AuroraError(f"{path}: 'assets.{key}' is for {other}; {none}")
    context = RecipeContext(path, language, assets)
    return tuple(config for config in (c.read(data, context) for c in mine) if config is not None)


DEDUP_DEFAULTS = {"threshold": 0.8, "num_perm": 128, "ngram": 5, "seed": 1, "memory_mb": 512, "recall": 0.95,
                  "verify": "shingles"}


def _dedup(data: dict, path: str) -> dict | None:
    """Dedup settings with defaults filled in, bands and rows chosen for `recall` at the threshold
    unless both are given; None when the recipe has no `dedup` section."""
    if data.get("dedup") is None:
        return None
    from dedup import VERIFY_METHODS, lsh_params

    given = section(data, "dedup", set(DEDUP_DEFAULTS) | {"bands", "rows"}, path)
    settings = {**DEDUP_DEFAULTS, **given}
    for key in ("threshold", "recall"):
        value = number(settings[key], f"dedup.{key}", path)
        if not 0 < value < 1 and not (key == "recall" and value == 1):
            raise AuroraError(f"{path}: 'dedup.{key}' must be between 0 and 1")
    if settings["verify"] not in VERIFY_METHODS:
        raise AuroraError(f"{path}: 'dedup.verify' must be one of {', '.join(VERIFY_METHODS)}")
    # Bounds: datasketch's seed is 32-bit; a signature of num_perm uint32 values is kept per document.
    limits = {"num_perm": 1024, "ngram": 64, "seed": (1 << 32) - 1, "memory_mb": 1 << 20, "bands": 1024, "rows": 1024}
    for key, high in limits.items():
        if key in settings:
            integer(settings[key], f"dedup.{key}", path, 0 if key == "seed" else 1, high)
    if ("bands" in settings) != ("rows" in settings):
        raise AuroraError(f"{path}: give both 'dedup.bands' and 'dedup.rows', or neither")
    if "bands" not in settings:
        settings["bands"], settings["rows"] = lsh_params(settings["threshold"], settings["num_perm"], settings["recall"])
    if settings["bands"] * settings["rows"] > settings["num_perm"]:
        raise AuroraError(f"{path}: dedup.bands x dedup.rows must not exceed dedup.num_perm ({settings['num_perm']})")
    return settings
