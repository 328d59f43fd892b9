"""Stage recipes (`recipes/cap.yaml`, `recipes/cat.yaml`): what a stage takes from which pool.

A stage has a total token budget and components; each component is a curated pool (`pool`: a
curation run's manifest or its folder) or instruction files (`instructions`: globs, made into a
pool by `pipeline.mix.pools`), with a budget (a share of the stage, a token count, or a count of
words turned into tokens through the pool's measured fertility) and the most passes over its pool it
may take (`max_epochs`). Validation happens here, before any work.
"""

import hashlib
from dataclasses import dataclass

from core.config import NAME, integer, number, read_yaml
from core.errors import AuroraError
from core.tokenizer import EOD_TOKEN
from filters.decontamination import read_eval_sets
from pipeline.recipe import LANGUAGES

# Bounds that keep the selection maths in 64-bit integers and the parts' work finite.
MAX_TOKENS = 1 << 50
MAX_EPOCHS = 1_000_000
MAX_PARTS = 65_536
STAGE_KEYS = {"name", "seed", "tokens", "output", "tokenizer", "parts", "max_shard_tokens", "eod_token",
              "validation_documents", "components", "decontamination"}
COMPONENT_KEYS = {"name", "language", "pool", "instructions", "tokens", "words", "max_epochs"}
# A component's language labels its tokens and validation in the stage manifest and the trainer: a
# curated pool's is its curation's (checked when the pool is opened), and instruction data may
# also be `multi` (records of several languages).
INSTRUCTION_LANGUAGES = (*LANGUAGES, "multi")


@dataclass(frozen=True)
class Component:
    name: str
    language: str
    tokens: float | None  # a share of the stage (0 < x <= 1, float) or an absolute count (int); None with `words`
    max_epochs: float
    pool: str | None = None  # a pool manifest (or its folder)
    instructions: tuple[str, ...] = ()  # input globs
    words: int | None = None  # the budget in words of the pool's documents instead of tokens


@dataclass(frozen=True)
class StageRecipe:
    """A checked stage recipe, an immutable value (`--output` makes another: `dataclasses.replace`)."""

    path: str
    sha256: str
    name: str
    seed: int
    tokens: int
    output: str
    tokenizer: str
    parts: int
    max_shard_tokens: int
    eod_token: str
    validation_documents: int  # held out of each component for the trainer's validation
    components: tuple[Component, ...]
    decontamination: tuple = ()  # `filters.decontamination.EvalSet`s for the instruction components


def _error(path: str, message: str) -> AuroraError:
    return AuroraError(f"{path}: {message}")


def _component(item, i: int, names: set, path: str) -> Component:
    where = f"components[{i}]"
    if not isinstance(item, dict) or set(item) - COMPONENT_KEYS:
        raise _error(path, f"{where} must be a mapping of {', '.join(sorted(COMPONENT_KEYS))}")
    name = item.get("name")
    if not isinstance(name, str) or name in names:
        raise _error(path, f"{where} needs a unique string 'name'")
    if not NAME.fullmatch(name):  # it names the component's shards and its pool folder
        raise _error(path, f"{where}: 'name' must be a file name of letters, digits, '.', '_' and '-'")
    if ("pool" in item) == ("instructions" in item):
        raise _error(path, f"component '{name}' needs exactly one of 'pool' or 'instructions'")
    if ("tokens" in item) == ("words" in item):
        raise _error(path, f"component '{name}' needs exactly one of 'tokens' or 'words' (its budget)")
    tokens = item.get("tokens")
    if "tokens" in item and (isinstance(tokens, bool) or not (isinstance(tokens, int) and 1 <= tokens <= MAX_TOKENS
                                                              or isinstance(tokens, float) and 0 < tokens <= 1)):
        raise _error(path, f"component '{name}': 'tokens' must be a share (0 < x <= 1) or a token count up to {MAX_TOKENS:,}")
    if "words" in item:
        integer(item["words"], "words", f"{path}: component '{name}'", 1, MAX_TOKENS)
    epochs = number(item.get("max_epochs"), "max_epochs", f"{path}: component '{name}'")
    if not 0 < epochs <= MAX_EPOCHS:
        raise _error(path, f"component '{name}': 'max_epochs' must be above 0 and at most {MAX_EPOCHS:,}")
    if "pool" in item and (not isinstance(item["pool"], str) or not item["pool"]):
        raise _error(path, f"component '{name}': 'pool' must be a pool manifest or its folder")
    instructions = item.get("instructions", [])
    instructions = [instructions] if isinstance(instructions, str) else instructions
    if "instructions" in item and (not isinstance(instructions, list) or not instructions
                                   or not all(isinstance(p, str) and p for p in instructions)):
        raise _error(path, f"component '{name}': 'instructions' must be a non-empty list of path globs")
    allowed = INSTRUCTION_LANGUAGES if "instructions" in item else LANGUAGES
    if item.get("language") not in allowed:
        raise _error(path, f"component '{name}': 'language' must be one of {', '.join(allowed)}")
    return Component(name, item["language"], tokens, epochs, item.get("pool"), tuple(instructions), item.get("words"))


def load_stage_recipe(path: str) -> StageRecipe:
    raw, data = read_yaml(path, "stage recipe")
    unknown = sorted(set(data) - STAGE_KEYS)
    if unknown:
        raise _error(path, f"unknown key '{unknown[0]}' (allowed: {', '.join(sorted(STAGE_KEYS))})")
    for key in ("name", "output", "tokenizer"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise _error(path, f"'{key}' must be a non-empty string")
    if not NAME.fullmatch(data["name"]):
        raise _error(path, f"'name' must be a file name of letters, digits, '.', '_' and '-', got {data['name']!r}")
    integer(data.get("seed"), "seed", path, 0, (1 << 63) - 1)  # hashed as 64 bits, written as JSON
    validation = data.get("validation_documents", 0)
    if isinstance(validation, bool) or not isinstance(validation, int) or validation < 0:
        raise _error(path, "'validation_documents' must be a non-negative integer")
    components = data.get("components")
    if not isinstance(components, list) or not components:
        raise _error(path, "'components' must be a non-empty list")
    tokens = integer(data.get("tokens"), "tokens", path, 1, MAX_TOKENS)
    parts = integer(data.get("parts", 1), "parts", path, 1, MAX_PARTS)
    max_shard_tokens = integer(data.get("max_shard_tokens", 1 << 27), "max_shard_tokens", path, 1, (1 << 31) - 1)
    eod_token = data.get("eod_token", EOD_TOKEN)
    if not isinstance(eod_token, str) or not eod_token:
        raise _error(path, "'eod_token' must be a non-empty string")
    names: set = set()
    parsed = []
    for i, item in enumerate(components):
        parsed.append(_component(item, i, names, path))
        names.add(item["name"])
    given = sum(_token_budget(c, tokens) for c in parsed if c.words is None)
    if given > tokens:  # the budgets in words are checked once their pools are open (`budgets`)
        raise _error(path, f"the component budgets add up to {given:,} tokens, more than the stage total of {tokens:,}")
    decontamination = read_eval_sets(data.get("decontamination"), path)
    if decontamination and not any(c.instructions for c in parsed):
        raise _error(path, "'decontamination' applies to instruction components, and the stage has none "
                           "(a curated pool is decontaminated by its curation recipe)")
    return StageRecipe(
        path=path, sha256=hashlib.sha256(raw).hexdigest(), name=data["name"], seed=data["seed"], tokens=tokens,
        output=data["output"], tokenizer=data["tokenizer"], parts=parts, max_shard_tokens=max_shard_tokens, eod_token=eod_token,
        validation_documents=validation, components=tuple(parsed), decontamination=decontamination,
    )


def _token_budget(component: Component, stage_tokens: int) -> int:
    return component.tokens if isinstance(component.tokens, int) else round(component.tokens * stage_tokens)


def budgets(recipe: StageRecipe, tokens_per_word: list[float | None]) -> list[int]:
    """Each component's budget in tokens, a budget in words at its pool's tokens per word
    (`tokens_per_word`, in component order: the pool's tokens, EOD included, over its words);
    refused when they add up to more than the stage."""
    values = []
    for component, ratio in zip(recipe.components, tokens_per_word):
        if component.words is None:
            values.append(_token_budget(component, recipe.tokens))
        elif ratio is None:
            raise AuroraError(f"component '{component.name}': its budget is in words, and its pool records no words "
                              "(a pool curated before fertility was measured, or without words): curate it again or give 'tokens'")
        else:
            values.append(max(1, round(component.words * ratio)))
    if sum(values) > recipe.tokens:
        raise AuroraError(f"{recipe.path}: the component budgets add up to {sum(values):,} tokens, "
                          f"more than the stage total of {recipe.tokens:,}")
    return values
