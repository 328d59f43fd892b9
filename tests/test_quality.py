"""The quality classifier (`filters/quality.py`): fastText models of two label schemes made here,
from the project's sample text against the demo generator's junk; `min_score` and `pareto`
modes; the score in the signals, and a refilter that changes the mode or the cut-off byte for
byte what a full run writes."""

import random

import numpy as np
import orjson
import pytest
import yaml
from datatrove.data import Document
from datatrove.io import get_datafolder

from aurora.cli import main
from core.errors import AuroraError
from filters.quality import QualityConfig, QualityFilter, pareto_draw
from pipeline.curate import curate
from pipeline.recipe import load_recipe
from pipeline.refilter import refilter
from tooling.demo_data import clean_document, junk_document
from tooling.sample import sample_sentences

JUNK = ("boilerplate", "keyword_spam", "symbol_soup", "number_table")


def documents(seed: int, count: int) -> tuple[list[str], list[str]]:
    """`count` clean documents of the project's en sample text and `count` junk ones."""
    rng, sentences = random.Random(seed), sample_sentences("en")
    clean = [clean_document(rng, sentences, "en") for _ in range(count)]
    junk = [junk_document(JUNK[i % len(JUNK)], rng, "en", sentences, {}, clean) for i in range(count)]
    return clean, junk


def train(path, positive: str, negative: str, seed: int = 0) -> str:
    """A fastText supervised model, word bigrams as DCLM's, labels `__label__<positive>` and
    `__label__<negative>`; one thread, so the same bytes each time."""
    import fasttext

    clean, junk = documents(seed, 200)
    lines = [f"__label__{positive} {' '.join(t.split())}" for t in clean] + [f"__label__{negative} {' '.join(t.split())}" for t in junk]
    random.Random(seed).shuffle(lines)
    data = path.with_suffix(".txt")
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    fasttext.train_supervised(input=str(data), wordNgrams=2, epoch=10, dim=16, minCount=1, thread=1, seed=seed,
                              verbose=0).save_model(str(path))
    return str(path)


@pytest.mark.parametrize("positive, negative", [("hq", "cc"), ("1", "0")])
def test_the_classifier_scores_clean_text_above_junk_in_any_label_scheme(tmp_path, positive, negative):
    model = train(tmp_path / "quality.bin", positive, negative)
    clean, junk = documents(seed=1, count=50)  # not the training documents
    step = QualityFilter(get_datafolder(str(tmp_path / "out")), "en", QualityConfig(model, positive, "min_score", min_score=0.5))
    docs = [Document(text=t, id=f"c{i}") for i, t in enumerate(clean)] + [Document(text=t, id=f"j{i}") for i, t in enumerate(junk)]
    scores = [values["quality.score"] for values in step.measure(docs)]
    assert min(scores[:50]) > max(scores[50:])
    cut = (min(scores[:50]) + max(scores[50:])) / 2
    step = QualityFilter(get_datafolder(str(tmp_path / "out")), "en", QualityConfig(model, positive, "min_score", min_score=cut))
    kept = [d.id for d in step.run(iter(docs))]
    assert kept == [f"c{i}" for i in range(50)] and all(d.metadata["quality_score"] >= round(cut, 4) for d in docs[:50])


def test_pareto_draws_are_numpys_distribution_and_the_same_for_a_document():
    draws = np.array([pareto_draw(f"doc-{i}", seed=7, alpha=9) for i in range(20000)])
    reference = np.random.default_rng(0).pareto(9, 20000)
    for q in (0.1, 0.5, 0.9, 0.99):
        assert abs(np.quantile(draws, q) - np.quantile(reference, q)) < 0.01 + 0.05 * np.quantile(reference, q)
    assert pareto_draw("doc-1", 7, 9) == pareto_draw("doc-1", 7, 9) != pareto_draw("doc-1", 8, 9)
    # GPT-3's keep: a document of score s is kept with probability P(draw > 1 - s) = (2 - s) ** -alpha.
    for score in (0.99, 0.9, 0.5):
        assert abs(np.mean(draws > 1 - score) - (2 - score) ** -9) < 0.01, score


def _write(tmp_path, section: dict) -> str:
    data = yaml.safe_load(open("recipes/demo/en.yaml"))
    data["quality"] = section
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


@pytest.mark.parametrize("section, message", [
    ({"model": "m.bin", "label": "hq", "mode": "top"}, "'quality.mode' must be one of min_score, keep_top_fraction, pareto"),
    ({"model": "m.bin", "label": "hq", "mode": "keep_top_fraction", "fraction": 0}, "'quality.fraction' must be above 0"),
    ({"model": "m.bin", "label": "hq", "mode": "keep_top_fraction", "fraction": 0.5, "sample_documents": 5},
     "'quality.sample_documents' must be an integer from 10"),
    ({"model": "m.bin", "label": "hq", "mode": "pareto", "alpha": 9, "sample_documents": 100},
     "'quality.sample_documents' goes with mode keep_top_fraction"),
    ({"model": "m.bin", "label": "hq", "mode": "min_score", "min_score": 0.5, "sample_documents": 100},
     "'quality.sample_documents' goes with mode keep_top_fraction"),
    ({"model": "m.bin", "label": "hq", "mode": "pareto"}, "mode pareto needs 'quality.alpha'"),
    ({"model": "m.bin", "label": "hq", "mode": "min_score", "min_score": 0.5, "alpha": 9}, "'quality.alpha' goes with mode pareto"),
    ({"model": "m.bin", "label": "hq", "mode": "min_score", "min_score": float("inf")}, "'quality.min_score' must be a finite number"),
    ({"model": "m.bin", "label": "hq", "mode": "pareto", "alpha": 0}, "'quality.alpha' must be above 0"),
    ({"model": "", "label": "hq", "mode": "pareto", "alpha": 9}, "'quality.model' must be a non-empty string"),
    ({"model": "m.bin", "label": "hq", "mode": "pareto", "alpha": 9, "keep": 1}, "unknown key 'quality.keep'"),
])
def test_a_bad_quality_section_is_one_line(in_workspace, tmp_path, section, message):
    with pytest.raises(AuroraError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_recipe(_write(tmp_path, section))


@pytest.mark.parametrize("section, message", [
    ({"label": "good", "mode": "min_score", "min_score": 0.5}, "has no label 'good': its labels are "),
    ({"mode": "min_score", "min_score": 0.5}, "needs 'quality.label', its positive label: its labels are "),
    ({"label": "hq", "mode": "min_score", "min_score": 1.5}, "'quality.min_score' must be in [0, 1] for "),  # a probability's range
])
def test_a_label_or_cut_off_the_model_does_not_have_stops_the_run_before_any_work(in_workspace, tmp_path, capsys, section, message):
    model = train(tmp_path / "q.bin", "hq", "cc")
    recipe = _write(tmp_path, {"model": model, **section})
    assert main(["curate", recipe, "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()


def _files(run) -> dict:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*"))
            if p.is_file() and p.relative_to(run).parts[0] != "logs" and p.name != ".lock"}


def test_refilter_changes_the_mode_and_cut_off_without_scoring_again(in_workspace, tmp_path):
    import pyarrow.parquet as pq

    model = train(tmp_path / "q.bin", "hq", "cc")
    loose = _write(tmp_path, {"model": model, "label": "hq", "mode": "min_score", "min_score": 0.0})
    run = curate(load_recipe(loose), output=str(tmp_path / "run"), workers=2)
    rows = [r for p in sorted((tmp_path / "run" / "signals").glob("0*.parquet")) for r in pq.read_table(p).to_pylist()]
    scores = [r["quality.score"] for r in rows if r["removed_by"] is None]
    assert scores and None not in scores and run["funnel"]["removed"].get("quality.min_score", 0) == 0
    for name, section in (("tight", {"model": model, "label": "hq", "mode": "min_score", "min_score": float(np.percentile(scores, 40))}),
                          ("pareto", {"model": model, "label": "hq", "mode": "pareto", "alpha": 0.5, "seed": 3}),
                          ("top", {"model": model, "label": "hq", "mode": "keep_top_fraction", "fraction": 0.7, "sample_documents": 100})):
        (tmp_path / name).mkdir()
        recipe = _write(tmp_path / name, section)
        refiltered = refilter(load_recipe(recipe), str(tmp_path / "run"), output=str(tmp_path / name / "refilter"), workers=2)
        full = curate(load_recipe(recipe), output=str(tmp_path / name / "full"), workers=2)
        assert refiltered == full and full["funnel"]["kept"] < run["funnel"]["kept"], name
        assert any(reason.startswith("quality.") for reason in full["funnel"]["removed"]), name
        assert _files(tmp_path / name / "refilter") == _files(tmp_path / name / "full"), name
        if name == "top":  # the cut-off of a sample of 100, recorded in the run folder; about 30% of what reaches it goes
            cutoff = orjson.loads((tmp_path / name / "full" / "quality_cutoff.json").read_bytes())
            assert cutoff["fraction"] == 0.7 and cutoff["sample_documents"] == 100
            assert orjson.loads((tmp_path / name / "full" / "manifest.json").read_bytes())["cutoffs"] == {"quality": cutoff}
            reached = len(scores)  # the loose run kept every document that reached the classifier (dedup aside)
            assert 0.15 < full["funnel"]["removed"]["quality.keep_top_fraction"] / reached < 0.45
            # The report draws the score's histogram with the cut-off on it.
            assert main(["manifest", "report", str(tmp_path / name / "full"), "--output", str(tmp_path / "report")]) == 0
            page = (tmp_path / "report" / "report.html").read_text()
            chart = page[page.index("<title>quality.score</title>"):]
            chart = chart[: chart.index("</svg>")]
            assert chart.count('class="threshold"') == 1


def _jsonl_gz(path, texts: list[str]) -> str:
    import gzip

    import orjson

    with gzip.open(path, "wb") as f:
        f.writelines(orjson.dumps({"id": f"{path.stem}-{i}", "text": t}) + b"\n" for i, t in enumerate(texts))
    return str(path)


def test_roc_auc_is_the_share_of_pairs_ranked_right():
    from tooling.quality import roc_auc

    rng = np.random.default_rng(0)
    positive, negative = rng.integers(0, 20, 300) / 20, rng.integers(0, 15, 200) / 20  # many ties
    pairs = (positive[:, None] > negative[None, :]).mean() + 0.5 * (positive[:, None] == negative[None, :]).mean()
    assert abs(roc_auc(positive, negative) - pairs) < 1e-12
    assert roc_auc(np.array([0.9, 0.8]), np.array([0.1])) == 1.0 and roc_auc(np.array([0.1]), np.array([0.9])) == 0.0


def test_quality_train_measures_on_held_out_documents_and_writes_a_card(in_workspace, tmp_path, capsys):
    import json

    import fasttext

    clean, junk = documents(seed=5, count=300)
    positive = _jsonl_gz(tmp_path / "clean.jsonl.gz", clean)
    negative = [_jsonl_gz(tmp_path / "junk-a.jsonl.gz", junk[:250]), _jsonl_gz(tmp_path / "junk-b.jsonl.gz", junk[250:])]
    model = tmp_path / "models" / "en.bin"
    args = ["quality", "train", "--language", "en", "--positive", positive, "--negative", str(tmp_path / "junk-*.jsonl.gz"),
            "--output", str(model)]
    assert main(args) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("held out (30 documents per class; trained on 270): precision ")
    card = json.loads((tmp_path / "models" / "en.card.json").read_text())
    held_out = card["held_out"]
    assert held_out["auc"] > 0.95 and held_out["recall"] > 0.9 and 0.5 < held_out["precision"] <= 1  # precision at 0.5, uncalibrated
    assert [f["path"] for f in card["data"]["negative"]] == negative and card["data"]["positive"][0]["documents"] == 300
    assert card["parameters"]["wordNgrams"] == 2 and card["model"]["labels"] == {"positive": "hq", "negative": "cc"}
    assert sorted(fasttext.load_model(str(model)).get_labels()) == ["__label__cc", "__label__hq"]
    first = model.read_bytes()
    assert main(args) == 0 and model.read_bytes() == first  # one thread, one seed: the same model
    # It drops into a recipe as it is.
    recipe = _write(tmp_path, {"model": str(model), "label": "hq", "mode": "min_score", "min_score": 0.5})
    assert load_recipe(recipe).filter(QualityConfig).label == "hq"


@pytest.mark.parametrize("change, message", [
    (lambda a: a.__setitem__(a.index("--positive") + 1, "nowhere/*.jsonl"), "--positive nowhere/*.jsonl: no such file"),
    (lambda a: a.__setitem__(a.index("--language") + 1, "xx"), "--language must be one of en, fi, hi, ja, vi"),
    (lambda a: a.extend(["--held-out", "1.5"]), "--held-out must be between 0 and 1"),
])
def test_quality_train_refuses_bad_arguments_in_one_line(in_workspace, tmp_path, capsys, change, message):
    clean, junk = documents(seed=6, count=20)
    args = ["quality", "train", "--language", "en", "--positive", _jsonl_gz(tmp_path / "c.jsonl.gz", clean),
            "--negative", _jsonl_gz(tmp_path / "j.jsonl.gz", junk), "--output", str(tmp_path / "m.bin")]
    change(args)
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
