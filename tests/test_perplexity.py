"""KenLM perplexity, CCNet style: scores equal KenLM's own `query`, CCNet's normalization, buckets."""

import json
import random
import re
import shutil
import subprocess

import kenlm
import pytest
from conftest import ROOT, corpus_sentences, curate_demo

from filters.perplexity import PerplexityModel, bucket, bucket_cutoffs, normalize_lines, perplexity

SENTENCES = {
    "en": "The committee met on Tuesday and agreed that the library should open in spring.",
    "fi": "Kirjasto avataan keväällä, ja lapset pääsevät lukemaan satuja joka lauantai.",
    "hi": "गाँव के पुस्तकालय में बच्चे हर शनिवार कहानियाँ पढ़ते हैं।",
    "ja": "図書館は春に開館し、子どもたちは毎週土曜日に物語を読む。",
    "vi": "Thư viện sẽ mở cửa vào mùa xuân và trẻ em được đọc truyện mỗi thứ bảy.",
}


def _model(workspace, language) -> PerplexityModel:
    return PerplexityModel(str(workspace / "assets" / f"{language}.sp.model"), str(workspace / "assets" / f"{language}.arpa.bin"))


@pytest.mark.parametrize("language", list(SENTENCES))
def test_scores_equal_kenlm_query_and_the_python_module(workspace, language):
    model = _model(workspace, language)
    line = model.pieces([SENTENCES[language]])[0]
    ours, tokens = model.score_documents([SENTENCES[language]])[0]
    assert tokens == len(line.split()) + 1
    # KenLM's own `query` program, compiled from its sources by `aurora assets build`.
    query = ROOT / "assets" / "kenlm" / "bin" / "query"
    out = subprocess.run([str(query), str(workspace / "assets" / f"{language}.arpa.bin")], input=line + "\n",
                         capture_output=True, text=True, check=True).stdout
    total = float(re.search(r"Total: (\S+)", out).group(1))
    assert ours == pytest.approx(total, abs=1e-4)
    assert ours == pytest.approx(kenlm.Model(str(workspace / "assets" / f"{language}.arpa.bin")).score(line), abs=1e-6)


def test_document_perplexity_is_ccnet_doclm(workspace):
    model = _model(workspace, "en")
    text = "First line of a page.\nAnd a second one, longer than the first."
    lines = model.pieces(text.split("\n"))
    lm = kenlm.Model(str(workspace / "assets" / "en.arpa.bin"))
    log10 = sum(lm.score(line) for line in lines)
    tokens = sum(len(line.split()) + 1 for line in lines)
    assert model.perplexities([text])[0] == pytest.approx(10 ** (-log10 / tokens))
    assert perplexity(-4.0, 2) == pytest.approx(100.0)


def pieces_and_tokens_by_definition(model: PerplexityModel, lines: list[str]) -> list[tuple[str, int]]:
    """SentencePiece's pieces of each normalized line, joined by spaces, and CCNet's count of them."""
    pieces = [" ".join(p) for p in model._sp.encode(normalize_lines(lines, model.strip_accents), out_type=str)]
    return [(line, len(line.split())) for line in pieces]


@pytest.mark.parametrize("language", list(SENTENCES))
def test_pieces_from_ids_are_sentencepieces_own(workspace, language):
    """The pieces made from ids, and their count, are SentencePiece's pieces and str.split's count,
    on real sentences of the language, on the other languages' (unknown pieces for this model) and
    on random text of letters, marks, spaces and control characters."""
    model = _model(workspace, language)
    lines = [line for lang in SENTENCES for line in corpus_sentences(lang)[:300]]
    rng = random.Random(language)
    alphabet = "aZé\u0301\u0915\u094d\u3042\u6f22 \t\u00a0\u2028\u3000\x1c1٣"
    lines += ["".join(rng.choice(alphabet) for _ in range(rng.randrange(40))) for _ in range(300)]
    ours = model.pieces_and_tokens(lines)
    assert ours == pieces_and_tokens_by_definition(model, lines)
    lines_ids = model._sp.encode(normalize_lines(lines))
    assert sum(model._sp.unk_id() in ids for ids in lines_ids) > 100 and sum(model._sp.unk_id() not in ids for ids in lines_ids) > 100


def test_a_piece_that_holds_white_space_is_counted_as_kenlm_reads_it(workspace, tmp_path):
    """A model whose vocabulary has a piece with white space in it (identity normalization, a user
    symbol "on\u2028the"): each line's tokens are counted by splitting, not by its pieces."""
    import sentencepiece
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString((workspace / "assets" / "en.sp.model").read_bytes())
    proto.pieces.add(piece="on\u2028the", score=0.0, type=sentencepiece_model_pb2.ModelProto.SentencePiece.USER_DEFINED)
    proto.normalizer_spec.name, proto.normalizer_spec.precompiled_charsmap = "identity", b""
    path = tmp_path / "spaced.sp.model"
    path.write_bytes(proto.SerializeToString())
    model = PerplexityModel(str(path), str(workspace / "assets" / "en.arpa.bin"))
    lines = ["on\u2028the mat", "sat on\u2028the cat on\u2028the", "plain words only"]
    ours = model.pieces_and_tokens(lines)
    assert ours == pieces_and_tokens_by_definition(model, lines)
    assert not model._one_token_each and ours[1][1] > len(model._sp.encode(normalize_lines(lines)[1]))
    assert isinstance(model._sp, sentencepiece.SentencePieceProcessor)


# Expected outputs written from CCNet's text_normalizer.normalize (lower case, NFD without Mn
# marks as CCNet leaves it, digits to 0, its Unicode punctuation table, control characters removed).
CCNET_CASES = [
    ("Hello World", "hello world"),
    ("  Café au LAIT  ", "cafe\u0301 au lait".replace("e\u0301", "e")),
    ("Prix: 12,50 € — «soldes»", "prix: 00,00 €  -  \"soldes\""),
    ("Tiếng Việt", "tieng viet"),
    ("東京タワー，２０２４年。", "東京タワー,0000年."),  # full-width digits are digits: 0 before punctuation
    ("Tab\there\u0085end", "tabhereend"),
    ("Wait… what？！", "wait... what?!"),
]


@pytest.mark.parametrize("text, expected", CCNET_CASES)
def test_strip_accents_reproduces_ccnet(text, expected):
    assert normalize_lines([text], strip_accents=True) == [expected]


def test_default_normalization_keeps_vietnamese_and_hindi_marks():
    assert normalize_lines(["Tiếng Việt có dấu"]) == ["tiếng việt có dấu"]
    hindi = "हिन्दी में संख्याएँ"
    assert normalize_lines([hindi]) == [hindi]
    assert normalize_lines([hindi], strip_accents=True) != [hindi]  # CCNet erases the virama and chandrabindu


def ccnet_characters_by_definition(text: str) -> str:
    """CCNet's digit, punctuation and non-printing rules as its normalizer applies them: three
    regular expressions of the standard library, one after the other."""
    from filters.perplexity import UNICODE_PUNCT

    text = re.sub(r"\d", "0", text)
    text = re.sub(f"[{''.join(map(re.escape, UNICODE_PUNCT))}]", lambda m: UNICODE_PUNCT[m.group()], text)
    return re.sub(f"[{''.join(map(chr, [*range(0, 10), *range(11, 32), *range(127, 160)]))}]", "", text)


def test_digits_punctuation_and_non_printing_characters_are_ccnets_for_every_character():
    """core/_text_stats.c's `ccnet_characters` (one pass) gives what the three regular expressions
    give, for every code point (the digits of every script, surrogates included) and on random
    text of the punctuation, digits and control characters; `normalize_lines` keeps its lines."""
    from core import _text_stats
    from filters.perplexity import UNICODE_PUNCT

    every = [chr(c) for c in range(0x110000)]
    for context in ("a{}b", "\n{}{}…"):
        for part in (every[:0x10000], every[0x10000:]):
            text = "|".join(context.replace("{}", c) for c in part)
            assert _text_stats.ccnet_characters(text, UNICODE_PUNCT) == ccnet_characters_by_definition(text)
    pieces = [*UNICODE_PUNCT, "１", "٣", "\U0001D7CE", "\n", "\x00", "\x85", "\x7f", "\r", "a", "É", "😀", "\ud800", " "]
    rng = random.Random(0)
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 20)))
        lines = text.split("\n")
        expected = ccnet_characters_by_definition("\n".join(line.strip() for line in lines).lower()).split("\n")
        assert normalize_lines(lines) == expected, repr(text)
    assert _text_stats.ccnet_characters("—١\x00", UNICODE_PUNCT) == " - 0"  # and a str of the narrowest kind
    with pytest.raises(TypeError):
        _text_stats.ccnet_characters("a", {"ab": "c"})


def test_bucket_cutoffs_are_the_30th_and_60th_percentiles():
    values = [float(v) for v in range(1, 101)]
    low, high = bucket_cutoffs(values)
    assert low == pytest.approx(30.7) and high == pytest.approx(60.4)
    assert [bucket(v, [low, high]) for v in (1, 30.7, 31, 60.4, 61, 100)] == ["head", "middle", "middle", "tail", "tail", "tail"]


def test_buckets_are_computed_once_and_a_resumed_run_reuses_them(in_workspace, tmp_path):
    out = tmp_path / "vi"
    manifest = curate_demo("vi", out)
    cutoffs = json.loads((out / "perplexity_cutoffs.json").read_text())
    assert cutoffs["sample_documents"] == 500 and cutoffs["percentiles"] == [30, 60]
    funnel = manifest["funnel"]["perplexity_buckets"]
    removed = manifest["funnel"]["removed"]
    # The quality classifier and dedup come after.
    scored = manifest["funnel"]["kept"] + removed["exact_duplicate"] + removed["near_duplicate"] + removed["quality.keep_top_fraction"]
    assert sum(funnel.values()) == scored  # the demo keeps every bucket
    # Tamper with the cut-offs and rerun every task (as after a kill): the file is reused, not recomputed.
    (out / "perplexity_cutoffs.json").write_text(json.dumps({**cutoffs, "cutoffs": [0.0, 1e9]}))
    for completions in (out / "logs").glob("*/completions"):
        shutil.rmtree(completions)
    (out / "manifest.json").unlink()
    rerun = curate_demo("vi", out)
    assert rerun["funnel"]["perplexity_buckets"] == {"head": 0, "middle": scored, "tail": 0}


def test_missing_build_dependencies_are_named_in_one_line(monkeypatch):
    from core.errors import AuroraError
    from tooling import kenlm_build

    monkeypatch.setattr(kenlm_build, "_HEADERS", kenlm_build._HEADERS + ["boost/not_installed_here.hpp"])
    monkeypatch.setattr(kenlm_build.os, "geteuid", lambda: 1000)  # not root: nothing is installed
    with pytest.raises(AuroraError, match="libboost-program-options-dev .* zlib1g-dev") as error:
        kenlm_build._ensure_build_dependencies()
    assert "\n" not in str(error.value)


def test_cached_tools_are_reused(tmp_path):
    from tooling.kenlm_build import ensure_kenlm_tools

    paths, built = ensure_kenlm_tools(str(ROOT / "assets" / "kenlm"))
    assert built is False and set(paths) == {"lmplz", "build_binary", "query"}


def test_max_mode_removes_documents_above_the_threshold(workspace, tmp_path):
    from datatrove.data import Document
    from datatrove.io import get_datafolder

    from filters.perplexity import PerplexityConfig, PerplexityFilter

    model = _model(workspace, "en")
    texts = [SENTENCES["en"], "zzqx vrbl kkkj ppqw xxyz qqqq wwvv"]
    values = model.perplexities(texts)
    assert values[0] < values[1]
    config = PerplexityConfig("max", model.sp_path, model.lm_path, max_perplexity=(values[0] + values[1]) / 2)
    step = PerplexityFilter(get_datafolder(str(tmp_path)), model, config)
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    kept = list(step.run(iter(docs)))
    assert [d.id for d in kept] == ["0"] and kept[0].metadata["perplexity"] == round(values[0], 1)
    record = json.loads((tmp_path / "tasks" / "00000" / "perplexity.json").read_text())
    assert record["removed"] == {"perplexity.max_perplexity": 1}


@pytest.mark.parametrize("language", list(SENTENCES))
def test_real_clean_text_scores_below_symbol_soup_and_other_scripts(workspace, language):
    """Real text (the shared corpus, unseen by the model) against the generator's symbol soup and
    its wrong-language documents in another script. The issue's wider claim, every junk kind, does
    not hold for models trained on ~1,000 sentences: short natural lines, spam, number tables and
    same-script languages score like unseen real text (measured in README's "Limits")."""
    from conftest import corpus_sentences

    from filters.heuristics import SCRIPTS
    from pipeline.recipe import TEXT_LANGUAGES
    from tooling.demo_data import clean_document, junk_document
    from tooling.sample import sample_sentences

    corpus = corpus_sentences(language)
    model, rng = _model(workspace, language), random.Random(0)
    clean = model.perplexities([clean_document(rng, corpus, language) for _ in range(200)])
    other_scripts = [other for other in TEXT_LANGUAGES if SCRIPTS[other] != SCRIPTS[language]]
    junk = {
        "symbol_soup": [junk_document("symbol_soup", rng, language, sample_sentences(language), [], []) for _ in range(40)],
        "other_script": [junk_document("wrong_language", rng, language, [], other_scripts, []) for _ in range(40)],
    }
    fractions = {}
    for kind, texts in junk.items():
        scores = model.perplexities(texts)
        fractions[kind] = sum(c < j for c in clean for j in scores) / (len(clean) * len(scores))
    assert min(fractions.values()) >= 0.95, fractions
