"""The quality classifier's transformers format (`filters.quality.SequenceClassifier`): tiny BERT
sequence classifiers made here (a WordLevel tokenizer of the project's sample text, hidden 32, two
layers, safetensors), one with a regression head shifted to FineWeb-Edu's range and one of two
classes fitted a few steps to tell the sample text from the demo generator's junk. Their scores
are the model's own, whatever the batch; a run is the same bytes twice and a refilter is byte for
byte a full run; bad folders and settings stop the run in one line."""

import shutil

import numpy as np
import pytest
from datatrove.data import Document
from datatrove.io import get_datafolder
from test_quality import _files, _write, documents

from aurora.cli import main
from filters.quality import QualityConfig, QualityFilter, model_sha256
from pipeline.curate import curate
from pipeline.recipe import load_recipe
from pipeline.refilter import refilter
from tooling.sample import sample_sentences

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

MAX_LENGTH = 64  # tokens: short, so that the demo's documents are cut


def _tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(sample_sentences("en"), trainers.WordLevelTrainer(
        vocab_size=3000, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"]))
    tokenizer.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                                sep_token="[SEP]", model_max_length=MAX_LENGTH)


def _bert(tokenizer, **head):
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=MAX_LENGTH, **head)
    return transformers.BertForSequenceClassification(config)


def _fit(model, tokenizer) -> None:
    """A few steps of Adam on the sample text (hq) against the demo generator's junk (cc)."""
    clean, junk = documents(seed=0, count=64)
    batch = tokenizer(clean + junk, truncation=True, max_length=MAX_LENGTH, padding=True, return_tensors="pt")
    labels = torch.tensor([1] * len(clean) + [0] * len(junk))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(30):
        optimizer.zero_grad()
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
    model.eval()


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """{"regression": folder, "classes": folder}: saved as `save_pretrained` saves (safetensors)."""
    root, tokenizer = tmp_path_factory.mktemp("classifiers"), _tokenizer()
    regression = _bert(tokenizer, num_labels=1)
    with torch.no_grad():
        regression.classifier.bias.fill_(3.0)  # FineWeb-Edu's range: its cut-off is 3
    classes = _bert(tokenizer, num_labels=2, id2label={0: "cc", 1: "hq"}, label2id={"cc": 0, "hq": 1})
    _fit(classes, tokenizer)
    for name, model in (("regression", regression), ("classes", classes)):
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    return {"regression": str(root / "regression"), "classes": str(root / "classes")}


def _direct_scores(folder: str, texts: list[str]) -> list[float]:
    """Each text scored alone, straight with transformers: its logit, or its probability of hq."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    scores = []
    with torch.inference_mode():
        for text in texts:
            logits = model(**tokenizer(text, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")).logits[0]
            scores.append(float(logits[0] if model.config.num_labels == 1 else torch.softmax(logits, -1)[1]))
    return scores


def _docs(seed: int, count: int) -> list[Document]:
    clean, junk = documents(seed, count)
    return [Document(text=t, id=f"c{i}") for i, t in enumerate(clean)] + [Document(text=t, id=f"j{i}") for i, t in enumerate(junk)]


@pytest.mark.parametrize("kind, label", [("regression", None), ("classes", "hq")])
def test_scores_are_the_models_own_whatever_the_batch(folders, tmp_path, kind, label):
    docs = _docs(seed=1, count=40)  # not the fitting documents
    assert max(len(d.text.split()) for d in docs) > MAX_LENGTH  # some are cut
    step = QualityFilter(get_datafolder(str(tmp_path)), "en", QualityConfig(folders[kind], label, "min_score", min_score=0.5))
    scores = [values["quality.score"] for values in step.measure(docs)]
    assert np.allclose(scores, _direct_scores(folders[kind], [d.text for d in docs]), rtol=0, atol=1e-5)
    # A document's score is the same bytes alone, in another order, or among others: the sample
    # of keep_top_fraction, scored on its own, has the scores the filter pass stores.
    assert [step.measure([d])[0]["quality.score"] for d in docs] == scores
    assert [v["quality.score"] for v in step.measure(docs[::-1])][::-1] == scores
    assert [v["quality.score"] for v in step.measure(docs[5:12])] == scores[5:12]
    step._classifier.forward_documents = 16  # a GPU's forward passes of 16, padded, here on the CPU: the same scores up to rounding
    assert np.allclose([v["quality.score"] for v in step.measure(docs)], scores, rtol=0, atol=1e-5)
    if kind == "classes":  # fitted a few steps: the sample text scores above the junk
        assert all(0 <= s <= 1 for s in scores) and np.mean(scores[:40]) > np.mean(scores[40:]) + 0.5
    else:
        assert 2 < min(scores) and max(scores) < 4


def test_the_folder_is_pinned_by_every_file_it_holds(folders, tmp_path):
    from pipeline.passes import asset_sha256

    copy = tmp_path / "copy"
    shutil.copytree(folders["regression"], copy)
    (copy / ".cache").mkdir()  # a download's bookkeeping: not the model
    assert model_sha256(str(copy), asset_sha256) == model_sha256(folders["regression"], asset_sha256)
    with open(copy / "tokenizer_config.json", "a") as f:
        f.write(" ")
    assert model_sha256(str(copy), asset_sha256) != model_sha256(folders["regression"], asset_sha256)


def test_a_refilter_is_byte_for_byte_a_full_run_which_scores_the_same_bytes_again(in_workspace, folders, tmp_path, capsys):
    """A regression model above 1 (FineWeb-Edu's range): min_score and keep_top_fraction refilters."""
    import pyarrow.parquet as pq

    model = folders["regression"]
    loose = _write(tmp_path, {"model": model, "mode": "min_score", "min_score": -100})
    curate(load_recipe(loose), output=str(tmp_path / "run"), workers=2)
    rows = [r for p in sorted((tmp_path / "run" / "signals").glob("0*.parquet")) for r in pq.read_table(p).to_pylist()]
    scores = [r["quality.score"] for r in rows if r["removed_by"] is None]
    assert scores and min(scores) > 1
    for name, section in (("tight", {"model": model, "mode": "min_score", "min_score": float(np.percentile(scores, 40))}),
                          ("top", {"model": model, "mode": "keep_top_fraction", "fraction": 0.7, "sample_documents": 100})):
        (tmp_path / name).mkdir()
        recipe = _write(tmp_path / name, section)
        refiltered = refilter(load_recipe(recipe), str(tmp_path / "run"), output=str(tmp_path / name / "refilter"), workers=2)
        full = curate(load_recipe(recipe), output=str(tmp_path / name / "full"), workers=2)
        assert refiltered == full and full["funnel"]["removed"].get(f"quality.{section['mode']}", 0) > 0, name
        # The refilter's signals hold the run's scores, the full run's its own: a second run scores the same bytes.
        assert _files(tmp_path / name / "refilter") == _files(tmp_path / name / "full"), name
    # Another model is another basis: refused.
    other = _write(tmp_path, {"model": folders["classes"], "label": "hq", "mode": "min_score", "min_score": 0.5})
    capsys.readouterr()
    assert main(["refilter", other, "--from", str(tmp_path / "run"), "--output", str(tmp_path / "other")]) == 2
    assert "quality differs from the run's (its classifier or its positive label)" in capsys.readouterr().err


def _pickled(folder, tmp_path) -> str:
    shutil.copytree(folder, tmp_path / "pickled")
    (tmp_path / "pickled" / "model.safetensors").rename(tmp_path / "pickled" / "pytorch_model.bin")
    return str(tmp_path / "pickled")


def _without_config(folder, tmp_path) -> str:
    shutil.copytree(folder, tmp_path / "bare")
    (tmp_path / "bare" / "config.json").unlink()
    return str(tmp_path / "bare")


def _encoder_only(folder, tmp_path) -> str:
    """An encoder without a classification head (as the base model FineWeb-Edu fine-tuned)."""
    encoder = transformers.BertModel(transformers.AutoConfig.from_pretrained(folder))
    encoder.save_pretrained(tmp_path / "encoder")
    transformers.AutoTokenizer.from_pretrained(folder).save_pretrained(tmp_path / "encoder")
    return str(tmp_path / "encoder")


@pytest.mark.parametrize("kind, make, section, message", [
    ("regression", None, {"mode": "pareto", "alpha": 9}, "quality mode pareto needs a probability: "),
    ("regression", None, {"label": "hq", "mode": "min_score", "min_score": 3}, "is a regression model, its one output the score: "
                                                                                "leave out 'quality.label'"),
    ("classes", None, {"label": "good", "mode": "min_score", "min_score": 0.5}, "has no label 'good': its labels are cc, hq"),
    ("classes", None, {"mode": "min_score", "min_score": 0.5}, "needs 'quality.label', its positive label: its labels are cc, hq"),
    ("classes", None, {"label": "hq", "mode": "min_score", "min_score": 3}, "'quality.min_score' must be in [0, 1] for "),
    ("classes", _pickled, {"label": "hq", "mode": "min_score", "min_score": 0.5},
     "has no model.safetensors (its pytorch_model.bin is a pickle, which is never loaded"),
    ("classes", _without_config, {"label": "hq", "mode": "min_score", "min_score": 0.5}, "is a folder without config.json"),
    ("classes", _encoder_only, {"label": "hq", "mode": "min_score", "min_score": 0.5},
     "is not a sequence-classification model: its weights lack classifier.bias, classifier.weight"),
])
def test_a_bad_folder_or_setting_stops_the_run_in_one_line(in_workspace, folders, tmp_path, capsys, kind, make, section, message):
    model = make(folders[kind], tmp_path) if make else folders[kind]
    recipe = _write(tmp_path, {"model": model, **section})
    assert main(["curate", recipe, "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()
