"""What a token means per language: the tokenizer's fertility (tokens per word and per character)
on real sentences and on the demo pools.

For each tokenizer given (`tokenizer.json` files; the demo's, from `make assets`, by default) and
each language of ../shared/corpus: the corpus's sentences, normalized as curation normalizes
text, are tokenized (EOD excluded) and cut into words by each language's segmenter
(`core.text.words`: fugashi morphemes for ja, syllables for vi). Then, from each demo pool's
manifest (`out/demo/<lang>`, after `make recipe-<lang>`), the fertility its curation measured on
its kept documents with its own tokenizer.

    .venv/bin/python bench/fertility.py [--tokenizer assets/tokenizer.json ...] [--pools out/demo]
"""

import argparse
import os
import sys

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from core.text import normalize, words  # noqa: E402
from core.tokenizer import load_tokenizer  # noqa: E402
from manifests.manifest import ManifestMissing, load_manifest  # noqa: E402
from pipeline.recipe import TEXT_LANGUAGES  # noqa: E402

CORPUS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "corpus")


def corpus_fertility(tokenizer, language: str) -> dict | None:
    path = os.path.join(CORPUS, f"{language}.txt")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        sentences = [normalize(line) for line in f if line.strip()]
    tokens = sum(len(e.ids) for e in tokenizer.encode_batch_fast(sentences, add_special_tokens=False))
    counted = {"sentences": len(sentences), "tokens": tokens, "words": sum(len(words(s, language)) for s in sentences),
               "characters": sum(map(len, sentences))}
    return counted | {"tokens_per_word": tokens / counted["words"], "tokens_per_character": tokens / counted["characters"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokenizer", nargs="+", default=["assets/tokenizer.json"])
    parser.add_argument("--pools", default="out/demo")
    args = parser.parse_args()
    print("| data | tokenizer | language | sentences or documents | words | characters | tokens | tokens per word | tokens per character |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for path in args.tokenizer:
        tokenizer = load_tokenizer(path)
        for language in TEXT_LANGUAGES:
            f = corpus_fertility(tokenizer, language)
            if f is None:
                print(f"| ../shared/corpus/{language}.txt | {path} | {language} | absent | | | | | |")
                continue
            print(f"| ../shared/corpus/{language}.txt | {path} | {language} | {f['sentences']:,} | {f['words']:,} | {f['characters']:,} "
                  f"| {f['tokens']:,} | {f['tokens_per_word']:.3f} | {f['tokens_per_character']:.3f} |")
    for language in (*TEXT_LANGUAGES, "code"):
        try:
            manifest, _ = load_manifest(os.path.join(args.pools, language))
        except ManifestMissing:
            continue
        if "fertility" not in manifest:
            print(f"| pool {language} | | | curated before fertility was measured | | | | | |")
            continue
        f = manifest["fertility"]["total"]
        print(f"| demo pool {manifest['name']} | {manifest['tokenizer']['path']} | {manifest['language']} | {f['documents']:,} "
              f"| {f['words']:,} | {f['characters']:,} | {f['tokens']:,} | {f['tokens_per_word']:.3f} | {f['tokens_per_character']:.3f} |")


if __name__ == "__main__":
    main()
