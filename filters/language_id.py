"""Language identification with a fastText model (ours from `aurora assets build`, or lid.176 / GlotLID)."""

from datatrove.data import Document

from core.errors import AuroraError
from core.storage import local_asset
from filters.base import RecordedFilter, record

# The recipe languages and their labels in the two fastText label schemes: ISO 639-1
# (`__label__en`: lid.176) and ISO 639-3 with the ISO 15924 script
# (`__label__eng_Latn`: GlotLID, as NLLB's and OpenLID's models). The script is part of the
# language: the hi recipe (its heuristics, perplexity model, budgets) is Devanagari Hindi, so
# GlotLID's hin_Latn (romanized Hindi), like every other label, stands for no recipe language.
LABELS = {"en": ("en", "eng_Latn"), "fi": ("fi", "fin_Latn"), "hi": ("hi", "hin_Deva"),
          "ja": ("ja", "jpn_Jpan"), "vi": ("vi", "vie_Latn")}
LABEL_LANGUAGE = {label: language for language, labels in LABELS.items() for label in labels}


def recipe_language(label: str) -> str | None:
    """The recipe language a model's label (`__label__` optional) stands for; None for any other."""
    return LABEL_LANGUAGE.get(label.removeprefix("__label__"))


def load_fasttext(path: str):
    import fasttext

    try:
        # fastText prints a warning to stderr for every load; the model is the same.
        fasttext.FastText.eprint = lambda *args, **kwargs: None
        return fasttext.load_model(local_asset(path))
    except ValueError as e:
        raise AuroraError(f"cannot load fastText model {path}: {e}") from None


def load_language_model(path: str, language: str):
    """The model, refused when none of its labels is `language` in a known scheme: it could
    never keep a document (an unknown label scheme, or a model without that language)."""
    model = load_fasttext(path)
    labels = model.get_labels()
    if not any(recipe_language(label) == language for label in labels):
        lid176, glotlid = LABELS[language]
        raise AuroraError(
            f"language-ID model {path} has no label for '{language}': expected __label__{lid176} (lid.176) "
            f"or __label__{glotlid} (GlotLID), it has {', '.join(labels[:5])}{', ...' if len(labels) > 5 else ''}"
        )
    return model


def predict_languages(model, texts: list[str]) -> list[tuple[str, float]]:
    """Top label (as the model names it) and its probability for each text (newlines folded: fastText reads one line)."""
    labels, scores = model.predict([" ".join(t.split()) for t in texts], k=1)
    return [(label[0].removeprefix("__label__"), float(min(score[0], 1.0))) for label, score in zip(labels, scores)]


class LanguageFilter(RecordedFilter):
    """Keeps documents whose top language is the recipe's, with at least `min_score` probability."""

    name = "🌍 Language ID"
    step = "language"

    def __init__(self, output_folder, model_path: str, language: str, min_score: float, batch_size: int = 256):
        super().__init__(output_folder, batch_size=batch_size)
        self.model_path, self.language, self.min_score = model_path, language, min_score
        self._model = None

    def __getstate__(self):  # the loaded model stays in its process
        return {**self.__dict__, "_model": None}

    def predictions(self, batch: list[Document]) -> list[tuple[str, float]]:
        """(label, score) of each document."""
        if self._model is None:
            self._model = load_language_model(self.model_path, self.language)
        return predict_languages(self._model, [d.text for d in batch])

    def filter_batch(self, batch: list[Document]):
        results = []
        for doc, (label, score) in zip(batch, self.predictions(batch)):
            record(doc, {"language": label, "language_score": score})
            doc.metadata["language_score"] = round(score, 4)
            if recipe_language(label) != self.language:
                doc.metadata["predicted_language"] = label  # as the model said it, e.g. hin_Latn
                results.append((False, "wrong_language"))
            elif score < self.min_score:
                record(doc, {"removed_value": score, "removed_threshold": float(self.min_score)})
                results.append((False, "low_language_score"))
            else:
                results.append(True)
        return results

    def filter(self, doc: Document):
        return self.filter_batch([doc])[0]
