"""Curation recipes: YAML files that say what to read, how to filter it and where the shards go.

Validation happens once, up front, so a bad recipe fails with one line before any work starts.
Relative paths are taken from the current directory (the project root for `make` targets).
"""

import hashlib
from dataclasses import dataclass, field

from core.config import NAME, integer, number, read_yaml
from core.errors import AuroraError
from core.tokenizer import EOD_TOKEN
from readers.html_text import DEFAULT_EXTRACTOR, EXTRACTORS

TEXT_LANGUAGES = ("en", "fi", "hi", "ja", "vi")
LANGUAGES = TEXT_LANGUAGES + ("code",)


@dataclass
class Source:
    name: str
    paths: list[str]


@dataclass
class Recipe:
    path: str
    sha256: str
    name: str
    language: str
    sources: list[Source]
    output: str
    tokenizer: str
    lid_model: str | None = None
    min_language_score: float = 0.0
    heuristics: dict = field(default_factory=dict)
    code_languages: list[str] = field(default_factory=list)
    redact_pii: bool = False
    perplexity: dict | None = None  # mode, keep or max_perplexity, strip_accents, sample_documents, model paths
    dedup: dict | None = None  # threshold, num_perm, ngram, seed, bands, rows, memory_mb
    url_filter: list = field(default_factory=list)  # `filters.url.Blocklist`s, first match wins
    flagged_words: dict | None = None  # list (a file), max_ratio
    decontamination: list = field(default_factory=list)  # `filters.decontamination.EvalSet`s
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


def _section(data: dict, key: str, allowed: set, where: str, required: bool = True) -> dict:
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


def _heuristics(heuristics, language: str, path: str) -> dict:
    """Text recipes: {group: {rule: threshold}}; the code recipe: {rule: threshold}. Each threshold
    is checked against its rule's range: `filters.heuristics.RULES` for text; for code, every rule
    is a size, a count or a fraction, so at least 0 and fractions at most 1."""
    from math import inf

    if not isinstance(heuristics, dict):
        raise AuroraError(f"{path}: 'heuristics' must be a mapping")
    if language == "code":
        from filters.code import CodeQualityFilter

        ranges = {rule: (0, 1 if rule.endswith("_fraction") else inf, float) for rule in CodeQualityFilter.DEFAULTS}
        groups = {None: (heuristics, ranges)}
    else:
        from filters.heuristics import GROUPS, RULES, rule_names

        unknown = sorted(set(heuristics) - set(GROUPS))
        if unknown:
            raise AuroraError(f"{path}: unknown heuristic group 'heuristics.{unknown[0]}' (allowed: {', '.join(GROUPS)})")
        groups = {}
        for group, rules in heuristics.items():
            if not isinstance(rules, dict):
                raise AuroraError(f"{path}: 'heuristics.{group}' must be a mapping of rule to threshold")
            groups[group] = (rules, {rule: RULES[group][rule] for rule in rule_names(group, language)})
    for group, (rules, ranges) in groups.items():
        prefix = f"heuristics.{group}." if group else "heuristics."
        for key, value in rules.items():
            if key not in ranges:
                raise AuroraError(f"{path}: unknown rule '{prefix}{key}' for {language} (allowed: {', '.join(ranges)})")
            if value is None:
                continue
            number(value, prefix + key, path)
            low, high, kind = ranges[key]
            if (kind is int and not isinstance(value, int)) or not low <= value <= high:
                what = "an integer" if kind is int else "a number"
                span = f">= {low:g}" if high == inf else f"in [{low:g}, {high:g}]"
                raise AuroraError(f"{path}: '{prefix}{key}' must be {what} {span}, got {value!r}")
    return heuristics


def load_recipe(path: str) -> Recipe:
    raw, data = read_yaml(path, "recipe")
    allowed = {"name", "language", "sources", "output", "assets", "read", "langid", "heuristics", "perplexity", "dedup", "code",
               "tokenize", "url_filter", "flagged_words", "decontamination"}
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
        parsed_sources.append(Source(source["name"], paths))

    assets = _section(data, "assets", {"tokenizer", "lid_model", "sp_model", "kenlm_model"}, path)
    if not isinstance(assets.get("tokenizer"), str):
        raise AuroraError(f"{path}: missing key 'assets.tokenizer'")
    recipe = Recipe(
        path=path, sha256=hashlib.sha256(raw).hexdigest(), name=data["name"], language=language,
        sources=parsed_sources, output=data["output"], tokenizer=assets["tokenizer"],
    )

    tokenize = _section(data, "tokenize", {"eod_token", "max_shard_tokens", "batch_size"}, path, required=False)
    recipe.eod_token = tokenize.get("eod_token", EOD_TOKEN)
    if not isinstance(recipe.eod_token, str) or not recipe.eod_token:
        raise AuroraError(f"{path}: 'tokenize.eod_token' must be a non-empty string")
    # A shard's token count is an int32 sum in the index; a batch is held in memory.
    for key, high in (("max_shard_tokens", (1 << 31) - 1), ("batch_size", 1 << 20)):
        if key in tokenize:
            setattr(recipe, key, integer(tokenize[key], f"tokenize.{key}", path, 1, high))

    read = _section(data, "read", {"max_document_bytes", "unit_bytes", "extractor"}, path, required=False)
    if "max_document_bytes" in read:  # a document is held whole by the filters: at most 1 GiB
        recipe.max_document_bytes = integer(read["max_document_bytes"], "read.max_document_bytes", path, 1, 1 << 30)
    if "unit_bytes" in read:  # below 4 KiB a unit is a handful of records; 1 TiB is a file never split
        recipe.unit_bytes = integer(read["unit_bytes"], "read.unit_bytes", path, 4 << 10, 1 << 40)
    if "extractor" in read:
        if read["extractor"] not in EXTRACTORS:
            raise AuroraError(f"{path}: 'read.extractor' must be one of {', '.join(EXTRACTORS)}, not {read['extractor']!r}")
        recipe.extractor = read["extractor"]

    heuristics = data.get("heuristics")
    if heuristics is not None and not isinstance(heuristics, dict):  # `[]`, `0` or `false` would mean no heuristics
        raise AuroraError(f"{path}: 'heuristics' must be a mapping of groups (or left out for none)")
    recipe.heuristics = _heuristics(heuristics or {}, language, path)

    if language == "code":
        # Sections the code recipe would ignore are refused, as `code` is in a text recipe.
        for key in ("langid", "perplexity"):
            if key in data:
                raise AuroraError(f"{path}: '{key}' is for text recipes; the code recipe has none")
        for key in ("lid_model", "sp_model", "kenlm_model"):
            if key in assets:
                raise AuroraError(f"{path}: 'assets.{key}' is for text recipes; the code recipe has none")
        code = _section(data, "code", {"languages", "redact_pii"}, path)
        from filters.code import EXTENSIONS

        languages = code.get("languages")
        if not isinstance(languages, list) or not languages:
            raise AuroraError(f"{path}: 'code.languages' must be a non-empty list")
        unknown_languages = sorted(set(languages) - set(EXTENSIONS.values()))
        if unknown_languages:
            raise AuroraError(f"{path}: unknown code language '{unknown_languages[0]}'")
        recipe.code_languages = languages
        if not isinstance(code.get("redact_pii", False), bool):
            raise AuroraError(f"{path}: 'code.redact_pii' must be true or false")
        recipe.redact_pii = code.get("redact_pii", False)
    else:
        if "code" in data:
            raise AuroraError(f"{path}: 'code' is for the code recipe; a {language} recipe has none")
        if not isinstance(assets.get("lid_model"), str):
            raise AuroraError(f"{path}: missing key 'assets.lid_model'")
        recipe.lid_model = assets["lid_model"]
        langid = _section(data, "langid", {"min_score"}, path)
        score = number(langid.get("min_score"), "langid.min_score", path)
        if not 0 <= score <= 1:
            raise AuroraError(f"{path}: 'langid.min_score' must be between 0 and 1")
        recipe.min_language_score = score
        recipe.perplexity = _perplexity(data, assets, path)
    recipe.dedup = _dedup(data, path)
    recipe.url_filter = _url_filter(data, path)
    recipe.decontamination = eval_sets(data.get("decontamination"), path)
    if data.get("flagged_words") is not None:
        if language == "code":
            raise AuroraError(f"{path}: 'flagged_words' is for text recipes; code has no word lists")
        section = _section(data, "flagged_words", {"list", "max_ratio"}, path)
        if not isinstance(section.get("list"), str) or not section["list"]:
            raise AuroraError(f"{path}: 'flagged_words.list' must be the path of a word list")
        ratio = number(section.get("max_ratio"), "flagged_words.max_ratio", path)
        if not 0 <= ratio <= 1:
            raise AuroraError(f"{path}: 'flagged_words.max_ratio' must be in [0, 1], got {ratio!r}")
        recipe.flagged_words = {"list": section["list"], "max_ratio": ratio}
    return recipe


def _url_filter(data: dict, path: str) -> list:
    """The recipe's URL blocklists, in order: each `{name, domains | substrings | patterns: file}`."""
    if data.get("url_filter") is None:
        return []
    from filters.url import Blocklist

    section = _section(data, "url_filter", {"lists"}, path)
    lists = section.get("lists")
    if not isinstance(lists, list) or not lists:
        raise AuroraError(f"{path}: 'url_filter.lists' must be a non-empty list")
    blocklists, kinds = [], ("domains", "substrings", "patterns")
    for i, item in enumerate(lists):
        where = f"{path}: url_filter.lists[{i}]"
        kind = [k for k in kinds if isinstance(item, dict) and k in item]
        if not isinstance(item, dict) or len(kind) != 1 or set(item) != {"name", kind[0]}:
            raise AuroraError(f"{where} must be a mapping of 'name' and one of {', '.join(kinds)} (a file)")
        name, file = item["name"], item[kind[0]]
        if not isinstance(name, str) or not NAME.fullmatch(name) or any(b.name == name for b in blocklists):
            raise AuroraError(f"{where}: 'name' must be a unique name of letters, digits, '.', '_' and '-' (it names the reason)")
        if not isinstance(file, str) or not file:
            raise AuroraError(f"{where}: '{kind[0]}' must be the path of a list file")
        blocklists.append(Blocklist(name, kind[0], file))
    return blocklists


EVAL_SET_KEYS = {"name", "path", "fields", "id", "kind", "ngram"}


def eval_sets(section, path: str) -> list:
    """Evaluation sets to decontaminate against (curation and stage recipes): a `sets` list of
    {name, path, fields, id, kind: text | code, ngram}; [] without a section."""
    if section is None:
        return []
    from filters.decontamination import KINDS, EvalSet

    if not isinstance(section, dict) or set(section) != {"sets"} or not isinstance(section["sets"], list) or not section["sets"]:
        raise AuroraError(f"{path}: 'decontamination' must be a mapping with a non-empty list 'sets'")
    sets = []
    for i, item in enumerate(section["sets"]):
        where = f"{path}: decontamination.sets[{i}]"
        if not isinstance(item, dict) or set(item) - EVAL_SET_KEYS or not {"name", "path", "fields"} <= set(item):
            raise AuroraError(f"{where} must be a mapping with name, path and fields (allowed: {', '.join(sorted(EVAL_SET_KEYS))})")
        name, fields = item["name"], item["fields"]
        if not isinstance(name, str) or not NAME.fullmatch(name) or any(s.name == name for s in sets):
            raise AuroraError(f"{where}: 'name' must be a unique name of letters, digits, '.', '_' and '-' (it names the reason)")
        if not isinstance(item["path"], str) or not item["path"]:
            raise AuroraError(f"{where}: 'path' must be a JSONL or parquet file")
        if isinstance(fields, str):
            fields = [fields]
        if not isinstance(fields, list) or not fields or not all(isinstance(f, str) and f for f in fields):
            raise AuroraError(f"{where}: 'fields' must list the fields whose text makes an item")
        id_field = item.get("id")
        if id_field is not None and (not isinstance(id_field, str) or not id_field):
            raise AuroraError(f"{where}: 'id' must name the field that identifies an item")
        kind = item.get("kind", "text")
        if kind not in KINDS:
            raise AuroraError(f"{where}: 'kind' must be one of {', '.join(KINDS)}")
        ngram = integer(item["ngram"], f"decontamination.sets[{i}].ngram", path, 1, 1000) if "ngram" in item else None
        sets.append(EvalSet(name, item["path"], fields, id_field, kind, ngram))
    return sets


DEDUP_DEFAULTS = {"threshold": 0.8, "num_perm": 128, "ngram": 5, "seed": 1, "memory_mb": 512, "recall": 0.95,
                  "verify": "shingles"}


def _dedup(data: dict, path: str) -> dict | None:
    """Dedup settings with defaults filled in, bands and rows chosen for `recall` at the threshold
    unless both are given; None when the recipe has no `dedup` section."""
    if data.get("dedup") is None:
        return None
    from dedup import VERIFY_METHODS, lsh_params

    section = _section(data, "dedup", set(DEDUP_DEFAULTS) | {"bands", "rows"}, path)
    settings = {**DEDUP_DEFAULTS, **section}
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


def _perplexity(data: dict, assets: dict, path: str) -> dict | None:
    """The perplexity step's settings, or None when the recipe has no `perplexity` section."""
    if data.get("perplexity") is None:
        return None
    section = _section(data, "perplexity", {"mode", "max_perplexity", "keep", "strip_accents", "sample_documents"}, path)
    for key in ("sp_model", "kenlm_model"):
        if not isinstance(assets.get(key), str):
            raise AuroraError(f"{path}: the perplexity step needs 'assets.{key}'")
    settings = {
        "sp_model": assets["sp_model"], "kenlm_model": assets["kenlm_model"],
        "strip_accents": section.get("strip_accents", False), "mode": section.get("mode"),
    }
    if not isinstance(settings["strip_accents"], bool):
        raise AuroraError(f"{path}: 'perplexity.strip_accents' must be true or false")
    if settings["mode"] == "max":
        settings["max_perplexity"] = number(section.get("max_perplexity"), "perplexity.max_perplexity", path)
        if settings["max_perplexity"] <= 0:
            raise AuroraError(f"{path}: 'perplexity.max_perplexity' must be above 0")
    elif settings["mode"] == "buckets":
        from filters.perplexity import BUCKETS

        keep = section.get("keep")
        if not isinstance(keep, list) or not keep or not all(isinstance(b, str) and b in BUCKETS for b in keep):
            raise AuroraError(f"{path}: 'perplexity.keep' must list buckets among {', '.join(BUCKETS)}")
        settings["keep"] = keep
        sample = section.get("sample_documents", 2000)
        if isinstance(sample, bool) or not isinstance(sample, int) or sample < 10:
            raise AuroraError(f"{path}: 'perplexity.sample_documents' must be an integer of at least 10")
        settings["sample_documents"] = sample
    else:
        raise AuroraError(f"{path}: 'perplexity.mode' must be 'max' or 'buckets'")
    return settings
