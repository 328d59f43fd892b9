"""`aurora assets build`: the models the pipeline needs, made offline from the project's own text.

- `lid.bin`: a fastText language-ID model for en, fi, hi, ja, vi (labels `__label__<lang>`,
  the same format as lid.176.bin, which can replace it by path).
- `tokenizer.json`: a byte-level BPE tokenizer in StarCoder's style: digits split one by one,
  StarCoder's special tokens with `<|endoftext|>` first (id 0, the end-of-document token).

Both trainings are single-threaded with fixed seeds, so the files are byte-identical on every
run with the same sample text and Python. `assets.json` lists each file's sha256 and how it
was made; a build whose inputs and outputs are unchanged is skipped.
"""

import hashlib
from importlib import metadata
import os
import random
import tempfile

import orjson

from pipeline.recipe import TEXT_LANGUAGES
from pipeline.sample import python_version, sample_path, sample_sentences, stdlib_files

STARCODER_SPECIAL_TOKENS = [
    "<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>", "<filename>",
    "<gh_stars>", "<issue_start>", "<issue_comment>", "<issue_closed>", "<jupyter_start>",
    "<jupyter_text>", "<jupyter_code>", "<jupyter_output>", "<empty_output>", "<commit_before>",
    "<commit_msg>", "<commit_after>", "<reponame>",
]
LID_PARAMS = dict(lr=0.5, epoch=30, dim=16, minn=1, maxn=4, wordNgrams=1, bucket=200_000, thread=1, seed=0, verbose=0)
TOKENIZER_VOCAB_SIZE = 8192
TOKENIZER_CODE_FILES = 60  # the first stdlib modules, so code shapes the merges too


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _halves(sentence: str, language: str) -> list[str]:
    if language == "ja":  # no spaces: split by characters
        k = len(sentence) // 2
        return [sentence[:k], sentence[k:]]
    tokens = sentence.split()
    k = len(tokens) // 2
    return [" ".join(tokens[:k]), " ".join(tokens[k:])]


def lid_training_lines(seed: int = 0) -> list[str]:
    """Labelled examples: each sample sentence, its two halves (web text has short lines) and
    random pairs (documents are longer than sentences)."""
    rng = random.Random(seed)
    lines = []
    for language in TEXT_LANGUAGES:
        sentences = sample_sentences(language)
        examples = sentences + [" ".join(rng.sample(sentences, 2)) for _ in sentences]
        examples += [half for s in sentences for half in _halves(s, language)]
        lines += [f"__label__{language} {' '.join(s.split())}" for s in examples if s.strip()]
    rng.shuffle(lines)
    return lines


def build_lid(path: str) -> None:
    import fasttext

    with tempfile.NamedTemporaryFile("w", encoding="utf-8", suffix=".txt", delete=False) as f:
        f.write("\n".join(lid_training_lines()) + "\n")
    try:
        model = fasttext.train_supervised(input=f.name, **LID_PARAMS)
    finally:
        os.unlink(f.name)
    model.save_model(path)


def tokenizer_training_texts() -> list[str]:
    texts = []
    for language in TEXT_LANGUAGES:
        texts += sample_sentences(language)
    texts += [p.read_text(encoding="utf-8", errors="replace") for p in stdlib_files()[:TOKENIZER_CODE_FILES]]
    return texts


def build_tokenizer(path: str) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TOKENIZER_VOCAB_SIZE,
        min_frequency=2,
        special_tokens=STARCODER_SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(tokenizer_training_texts(), trainer=trainer)
    tokenizer.save(path)


def _inputs() -> dict:
    inputs = {f"sample_text/{lang}.txt": _sha256(str(sample_path(lang))) for lang in TEXT_LANGUAGES}
    inputs["python"] = python_version()
    for package in ("fasttext-community", "tokenizers"):
        inputs[package] = metadata.version(package)
    return inputs


ASSETS = {
    "lid.bin": (build_lid, f"fastText train_supervised on the sample text of {', '.join(TEXT_LANGUAGES)}: {LID_PARAMS}"),
    "tokenizer.json": (
        build_tokenizer,
        f"HF tokenizers byte-level BPE, vocab {TOKENIZER_VOCAB_SIZE}, digits split, StarCoder special tokens; "
        f"trained on the sample text and the first {TOKENIZER_CODE_FILES} standard-library modules",
    ),
}


def build_assets(output: str, force: bool = False) -> tuple[dict, bool]:
    """Build every asset into `output`; returns (assets.json content, whether anything was built)."""
    os.makedirs(output, exist_ok=True)
    record_path = os.path.join(output, "assets.json")
    inputs = _inputs()
    if not force and os.path.exists(record_path):
        with open(record_path, "rb") as f:
            record = orjson.loads(f.read())
        up_to_date = record.get("inputs") == inputs and all(
            os.path.exists(os.path.join(output, name)) and _sha256(os.path.join(output, name)) == entry["sha256"]
            for name, entry in record.get("files", {}).items()
        ) and set(record.get("files", {})) == set(ASSETS)
        if up_to_date:
            return record, False
    files = {}
    for name, (build, how) in ASSETS.items():
        path = os.path.join(output, name)
        build(path + ".tmp")
        os.replace(path + ".tmp", path)
        files[name] = {"sha256": _sha256(path), "made_by": how}
    record = {"inputs": inputs, "files": files}
    with open(record_path, "wb") as f:
        f.write(orjson.dumps(record, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    return record, True
