"""Tokenization throughput: our shard writer vs datatrove's MegatronDocumentTokenizer vs bare HF tokenizers.

All three run in this process, interleaved for `--rounds` rounds in a rotating order (the median
counts: two shared cores are noisy, and a later run inherits a grown heap), on the same documents (at least 50 MB of
text in en, fi, hi, ja, vi and Python code) with the same tokenizer, and each appends one EOD
per document. The documents come as the curation's tokenize pass gets them: each with its source,
language and number of words (`core.text.WORD_COUNT`, counted by the filter pass and carried by
dedup's documents file), so ours counts fertility as it does there. Prints tokens/s for each and
the ratios. Target: ours >= 1.2x datatrove, and >= 0.95 of the bare `Tokenizer.encode_batch_fast`
ceiling (the call ours makes, with nothing around it).

    .venv/bin/python bench/tokenize.py [--megabytes 50] [--tokenizer assets/tokenizer.json]
"""

import os
import sys

# This file is named like the standard library's `tokenize`: put the project root, not bench/,
# first on the path before anything imports it.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import argparse  # noqa: E402
import gc  # noqa: E402
import random  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from datatrove.data import Document  # noqa: E402
from datatrove.io import get_datafolder  # noqa: E402
from datatrove.pipeline.tokens.megatron_tokenizer import MegatronDocumentTokenizer  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

import pipeline.tokenize as tokenize_module  # noqa: E402
from core.text import WORD_COUNT, words  # noqa: E402
from core.tokenizer import load_tokenizer  # noqa: E402
from pipeline.recipe import EOD_TOKEN, TEXT_LANGUAGES  # noqa: E402
from pipeline.tokenize import MegatronShardWriter  # noqa: E402
from tooling.demo_data import clean_document  # noqa: E402
from tooling.sample import sample_sentences, stdlib_files  # noqa: E402

BATCH = 1000


def make_documents(megabytes: int) -> list[Document]:
    rng = random.Random(0)
    sentences = {lang: sample_sentences(lang) for lang in TEXT_LANGUAGES}
    code = [p.read_text(encoding="utf-8", errors="replace") for p in stdlib_files()[:100]]
    docs, size = [], 0
    while size < megabytes * 1_000_000:
        kind = rng.choice(TEXT_LANGUAGES + ("code",))
        text = rng.choice(code) if kind == "code" else clean_document(rng, sentences[kind], kind)
        language = "en" if kind == "code" else kind
        metadata = {"source": kind, "language": language, WORD_COUNT: len(words(text, language))}
        docs.append(Document(text=text, id=str(len(docs)), metadata=metadata))
        size += len(text.encode("utf-8"))
    return docs


def bare(tokenizer, docs) -> int:
    tokens = 0
    for i in range(0, len(docs), BATCH):
        for encoding in tokenizer.encode_batch_fast([d.text for d in docs[i : i + BATCH]], add_special_tokens=False):
            tokens += len(encoding.ids) + 1  # + EOD
    return tokens


def datatrove_step(tokenizer_path, tokenizer, docs, out) -> int:
    step = MegatronDocumentTokenizer(get_datafolder(out), tokenizer_name_or_path=tokenizer_path, eos_token=EOD_TOKEN, batch_size=BATCH)
    step.__dict__["tokenizer"] = tokenizer  # its cached_property: one instance, with its EOS post-processor, for all rounds
    step.run(iter(docs), rank=0, world_size=1)
    return step.stats["tokens"].total


def our_step(tokenizer_path, docs, out) -> int:
    step = MegatronShardWriter(get_datafolder(out), "bench", tokenizer_path, EOD_TOKEN, max_shard_tokens=1 << 30, batch_size=BATCH)
    step.run(iter(docs), rank=0, world_size=1)
    return step.stats["tokens"].total


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--tokenizer", default="assets/tokenizer.json")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not os.path.exists(args.tokenizer):
        sys.exit(f"{args.tokenizer} not found: run `make assets` first")

    docs = make_documents(args.megabytes)
    megabytes = sum(len(d.text.encode()) for d in docs) / 1e6
    print(f"{len(docs):,} documents, {megabytes:.1f} MB of text, tokenizer {args.tokenizer}, {os.cpu_count()} CPUs")
    # Each path keeps one tokenizer for all its rounds, as a task keeps one for all its batches:
    # tokenizers gets slower with each instance a process makes (on 15 MB, 2.49 s with the first
    # and 3.18 s with the sixth, each dropped before the next), so all three are made before any
    # timing, ours last (the slowest instance, if any).
    bare_tokenizer = Tokenizer.from_file(args.tokenizer)
    datatrove_tokenizer = MegatronDocumentTokenizer(tempfile.gettempdir(), tokenizer_name_or_path=args.tokenizer, eos_token=EOD_TOKEN).tokenizer
    ours_tokenizer = load_tokenizer(args.tokenizer)
    tokenize_module.load_tokenizer = lambda path: ours_tokenizer

    paths = {
        "bare encode_batch_fast (ceiling)": lambda docs, out: bare(bare_tokenizer, docs),
        "datatrove MegatronDocumentTokenizer": lambda docs, out: datatrove_step(args.tokenizer, datatrove_tokenizer, docs, out),
        "ours: MegatronShardWriter": lambda docs, out: our_step(args.tokenizer, docs, out),
    }
    speeds = {name: [] for name in paths}
    token_counts = {}
    names = list(paths)
    for round_ in range(args.rounds):
        # Rotate the order each round: whichever runs later in a process inherits a grown heap.
        for name in names[round_ % 3 :] + names[: round_ % 3]:
            run = paths[name]
            # Each run its own copy of the documents, made before the clock starts: our shard
            # writer takes the word count out of a document's metadata.
            copies = [Document(text=d.text, id=d.id, metadata=dict(d.metadata)) for d in docs]
            gc.collect()
            with tempfile.TemporaryDirectory() as out:
                start = time.perf_counter()
                token_counts[name] = run(copies, out)
                seconds = time.perf_counter() - start
            speeds[name].append(token_counts[name] / seconds)
            print(f"round {round_ + 1}  {name:<38} {token_counts[name]:>12,} tokens  {seconds:7.2f} s")
    results = {name: (token_counts[name], statistics.median(s)) for name, s in speeds.items()}
    for name, (_, speed) in results.items():
        print(f"median  {name:<38} {speed:>12,.0f} tokens/s")
    counts = {tokens for tokens, _ in results.values()}
    assert len(counts) == 1, f"the three paths disagree on the token count: {results}"
    ours = results["ours: MegatronShardWriter"][1]
    print(f"ratio ours / datatrove: {ours / results['datatrove MegatronDocumentTokenizer'][1]:.2f} (target >= 1.2)")
    print(f"ratio ours / ceiling:   {ours / results['bare encode_batch_fast (ceiling)'][1]:.2f} (target >= 0.95)")


if __name__ == "__main__":
    main()
