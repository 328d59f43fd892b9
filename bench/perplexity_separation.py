"""How well the perplexity models rank real clean text below each kind of generated junk.

Per language: documents of real sentences from ../shared/corpus (unseen by the models) against
documents of each junk kind of the demo generator; prints, per kind, the share of (clean, junk)
pairs in which the junk scores the higher perplexity. README's "Limits" table comes from here.
With `--corpus-half`, the models are trained afresh on the sample text plus every other corpus
sentence, and the clean documents are made of the remaining sentences: what more reference text
of the same kind as the test text buys.

    .venv/bin/python bench/perplexity_separation.py [--assets assets] [--corpus-half] [--clean 200] [--junk 40]
"""

import argparse
import os
import random
import sys
import tempfile

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from filters.perplexity import PerplexityModel  # noqa: E402
from pipeline.recipe import TEXT_LANGUAGES  # noqa: E402
from tooling.assets import build_kenlm, build_sentencepiece  # noqa: E402
from tooling.demo_data import JUNK_KINDS, clean_document, junk_document  # noqa: E402
from tooling.kenlm_build import ensure_kenlm_tools  # noqa: E402
from tooling.sample import sample_sentences  # noqa: E402

CORPUS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "corpus")
# Copies of clean documents are dedup's to remove, not perplexity's; wrong_language is measured
# one other language at a time.
KINDS = [kind for kind in JUNK_KINDS if kind not in ("wrong_language", "exact_duplicate", "near_duplicate")]


def higher_share(clean: list[float], junk: list[float]) -> float:
    return sum(c < j for c in clean for j in junk) / (len(clean) * len(junk))


def separation(model: PerplexityModel, language: str, corpus: list[str], clean_documents: int,
               junk_documents: int) -> dict[str, float]:
    rng, sentences = random.Random(0), sample_sentences(language)
    clean = model.perplexities([clean_document(rng, corpus, language) for _ in range(clean_documents)])
    shares = {}
    for kind in KINDS:
        junk = [junk_document(kind, rng, language, sentences, [], []) for _ in range(junk_documents)]
        shares[kind] = higher_share(clean, model.perplexities(junk))
    for other in TEXT_LANGUAGES:
        if other != language:
            junk = [junk_document("wrong_language", rng, language, [], [other], []) for _ in range(junk_documents)]
            shares[f"wrong_language: {other}"] = higher_share(clean, model.perplexities(junk))
    return shares


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", default="assets")
    parser.add_argument("--corpus-half", action="store_true")
    parser.add_argument("--clean", type=int, default=200)
    parser.add_argument("--junk", type=int, default=40)
    args = parser.parse_args()
    for path in [os.path.join(CORPUS, f"{lang}.txt") for lang in TEXT_LANGUAGES] + [os.path.join(args.assets, "en.arpa.bin")]:
        if not os.path.exists(path):
            sys.exit(f"{path} not found: needs ../shared/corpus and `make assets`")
    tools = ensure_kenlm_tools(os.path.join(args.assets, "kenlm"))[0] if args.corpus_half else None
    table = {}
    with tempfile.TemporaryDirectory() as tmp:
        for language in TEXT_LANGUAGES:
            with open(os.path.join(CORPUS, f"{language}.txt"), encoding="utf-8") as f:
                corpus = [line.strip() for line in f if line.strip()]
            sp_path = os.path.join(args.assets, f"{language}.sp.model")
            lm_path = os.path.join(args.assets, f"{language}.arpa.bin")
            if args.corpus_half:
                reference, corpus = sample_sentences(language) + corpus[::2], corpus[1::2]
                sp_path, lm_path = os.path.join(tmp, f"{language}.sp.model"), os.path.join(tmp, f"{language}.arpa.bin")
                build_sentencepiece(language, reference, sp_path)
                build_kenlm(language, reference, sp_path, lm_path, tools)
            model = PerplexityModel(sp_path, lm_path)
            table[language] = separation(model, language, corpus, args.clean, args.junk)
    rows = list(dict.fromkeys(row for shares in table.values() for row in shares))
    print("| junk | " + " | ".join(TEXT_LANGUAGES) + " |")
    print("| --- |" + " ---: |" * len(TEXT_LANGUAGES))
    for row in rows:
        cells = [f"{table[lang][row]:.0%}" if row in table[lang] else "" for lang in TEXT_LANGUAGES]
        print(f"| {row} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
