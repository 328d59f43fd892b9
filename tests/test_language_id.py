import pytest

from conftest import LANGUAGES, corpus_sentences
from filters.language_id import load_fasttext, predict_languages


@pytest.mark.parametrize("language", LANGUAGES)
def test_language_id_accuracy_on_real_sentences(workspace, language):
    sentences = corpus_sentences(language)
    model = load_fasttext(str(workspace / "assets" / "lid.bin"))
    predicted = [label for label, _ in predict_languages(model, sentences)]
    accuracy = sum(p == language for p in predicted) / len(sentences)
    assert accuracy >= 0.97, f"{language}: {accuracy:.3f}"
