"""Language identification with a fastText model (ours from `aurora assets build`, or lid.176 / GlotLID)."""

from datatrove.data import Document

from filters.base import RecordedFilter
from pipeline.errors import AuroraError


def load_fasttext(path: str):
    import fasttext

    try:
        # fastText prints a warning to stderr for every load; the model is the same.
        fasttext.FastText.eprint = lambda *args, **kwargs: None
        return fasttext.load_model(path)
    except ValueError as e:
        raise AuroraError(f"cannot load fastText model {path}: {e}") from None


def predict_languages(model, texts: list[str]) -> list[tuple[str, float]]:
    """Top language and its probability for each text (newlines folded: fastText reads one line)."""
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

    def filter_batch(self, batch: list[Document]):
        if self._model is None:
            self._model = load_fasttext(self.model_path)
        results = []
        for doc, (language, score) in zip(batch, predict_languages(self._model, [d.text for d in batch])):
            doc.metadata["language_score"] = round(score, 4)
            if language != self.language:
                doc.metadata["predicted_language"] = language
                results.append((False, "wrong_language"))
            elif score < self.min_score:
                results.append((False, "low_language_score"))
            else:
                results.append(True)
        return results

    def filter(self, doc: Document):
        return self.filter_batch([doc])[0]
