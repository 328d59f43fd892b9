"""Flagged words: ratios through the real segmenters (fugashi for ja, syllables for vi), the filter
as a datatrove step with its rejects, list errors by file and line, and the example lists on real text."""

import gzip
import re
import unicodedata

import orjson
import pytest
from conftest import LANGUAGES, ROOT, corpus_sentences
from datatrove.data import Document
from datatrove.io import get_datafolder

from core.errors import AuroraError
from core.text import normalize, words
from filters.base import SIGNALS, DocumentSignals
from filters.flagged_words import MAX_ENTRY_WORDS, FlaggedWordsConfig, FlaggedWordsFilter, flagged_ratio, load_flagged_words

EXAMPLES = ROOT / "recipes" / "lists" / "flagged_words"


def flagged_list(tmp_path, language: str, text: str):
    path = tmp_path / f"{language}.txt"
    path.write_text(text, encoding="utf-8")
    return load_flagged_words(str(path), language)


def ratio(text: str, language: str, flagged) -> float:
    return flagged_ratio(words(normalize(text), language), flagged)


def test_english_phrases_cover_their_words_whatever_the_case(tmp_path):
    flagged = flagged_list(tmp_path, "en", "# a comment\n\nporn\nsex tape\r\n  xxx  \n")
    # 7 words: "Sex Tape" covers 2, "PORN" 1.
    assert ratio("Watch the Sex Tape and PORN now!", "en", flagged) == pytest.approx(3 / 7)
    assert ratio("The sex education tape was shown in class.", "en", flagged) == 0  # a phrase is consecutive words
    assert ratio("Pornography and sextape are other words.", "en", flagged) == 0  # whole words only
    assert ratio("", "en", flagged) == 0 and ratio("!!! ... ???", "en", flagged) == 0  # no words: ratio 0
    assert ratio("xxx xxx xxx", "en", flagged) == 1


def test_overlapping_matches_count_each_word_once(tmp_path):
    flagged = flagged_list(tmp_path, "en", "hot sex\nsex tape\ntape\nporn\nporn star\n")
    assert ratio("hot sex tape here", "en", flagged) == pytest.approx(3 / 4)  # "hot sex" and "sex tape" share "sex"
    assert ratio("sex tape", "en", flagged) == 1  # "tape" inside "sex tape"
    assert ratio("porn star", "en", flagged) == 1  # "porn" and "porn star" start at the same word


def test_japanese_entries_match_fugashi_morphemes_not_substrings(tmp_path):
    flagged = flagged_list(tmp_path, "ja", "バカ\nエロ\nアダルトビデオ\n")
    assert flagged.entries == {("バカ",), ("エロ",), ("アダルト", "ビデオ")}  # segmented as documents are
    assert words("あいつはバカだ", "ja") == ["あいつ", "は", "バカ", "だ"]
    assert ratio("あいつはバカだ", "ja", flagged) == pytest.approx(1 / 4)  # found inside unspaced text
    assert ratio("エロ動画を見た", "ja", flagged) == pytest.approx(1 / 5)
    assert ratio("アダルトビデオを売る店", "ja", flagged) == pytest.approx(2 / 5)  # a flagged word of two morphemes
    # The same characters inside another word ("vacation"): a substring match would flag it.
    vacation = "夏のバカンスを楽しんだ"
    assert "バカ" in vacation and words(vacation, "ja")[2] == "バカンス"
    assert ratio(vacation, "ja", flagged) == 0


def test_vietnamese_entries_are_syllables_with_their_tone_marks(tmp_path):
    # The list is written decomposed (NFD), as some editors save it: loading composes it.
    flagged = flagged_list(tmp_path, "vi", unicodedata.normalize("NFD", "đồ chó\nma\n"))
    assert flagged.entries == {("đồ", "chó"), ("ma",)}
    assert ratio("Nó là đồ chó", "vi", flagged) == pytest.approx(2 / 4)
    assert ratio("ĐỒ CHÓ", "vi", flagged) == 1
    for other in ("đồ chợ", "đó chó", "do cho", "đồ ăn cho chó"):  # one mark or one syllable apart
        assert ratio(other, "vi", flagged) == 0, other
    assert ratio("Con ma", "vi", flagged) == pytest.approx(1 / 2)
    assert ratio("Nhưng mà không sao", "vi", flagged) == 0  # "ma" is not "mà"
    assert ratio(unicodedata.normalize("NFD", "nó là đồ chó"), "vi", flagged) == pytest.approx(2 / 4)  # the normalized text


def test_hindi_entries_keep_their_devanagari_signs(tmp_path):
    # ज़ written precomposed (U+095B), which NFC decomposes: the list and the document meet in NFC.
    flagged = flagged_list(tmp_path, "hi", "कामुक\nहराम\u095Bादा\n")
    assert flagged.entries == {("कामुक",), ("हराम\u091c\u093cादा",)}  # each one word: matras and nukta stay inside
    assert ratio("वह हराम\u091c\u093cादा है", "hi", flagged) == pytest.approx(1 / 3)
    assert ratio("एक कामुक दृश्य", "hi", flagged) == pytest.approx(1 / 3)
    assert ratio("यह काम है", "hi", flagged) == 0  # "work": the entry's first letters, another word
    assert ratio("एक कमुक दृश्य", "hi", flagged) == 0  # the matra dropped: not the entry
    assert ratio("वह हरामजादा है", "hi", flagged) == 0  # the nukta dropped: not the entry


def _run(folder, language, path, max_ratio, docs):
    step = FlaggedWordsFilter(get_datafolder(str(folder)), language, FlaggedWordsConfig(path, max_ratio))
    kept = [d.id for d in step.run(iter(docs))]
    rejects_file = folder / "rejects" / "flagged_words" / "00000.jsonl.gz"
    rejects = {r["id"]: r for r in map(orjson.loads, gzip.open(rejects_file))} if rejects_file.exists() else {}
    return kept, rejects


def test_filter_removes_documents_above_the_threshold_into_rejects(tmp_path):
    path = tmp_path / "en.txt"
    path.write_text("porn\nsex tape\n", encoding="utf-8")
    texts = {
        "clean": "The library opens in spring and the children read stories on Saturdays.",
        "at": "One two three four five six seven eight nine porn",  # 1 of 10: at the threshold, kept
        "above": "Free porn and a sex tape for everyone today",  # 3 of 9
        "empty": "",
    }
    docs = [Document(text=t, id=i, metadata={SIGNALS: DocumentSignals(row={})}) for i, t in texts.items()]
    rows = {d.id: d.metadata[SIGNALS].row for d in docs}
    kept, rejects = _run(tmp_path / "out", "en", str(path), 0.1, docs)
    assert kept == ["clean", "at", "empty"]
    assert list(rejects) == ["above"] and rejects["above"]["reason"] == "flagged_words.max_ratio"
    assert rejects["above"]["text"] == texts["above"]  # nothing lost
    assert rows["at"] == {"flagged_words.ratio": 0.1}
    assert rows["empty"] == {"flagged_words.ratio": 0.0}
    assert rows["above"] == {"flagged_words.ratio": pytest.approx(3 / 9), "removed_value": pytest.approx(3 / 9),
                             "removed_threshold": 0.1, "removed_by": "flagged_words.max_ratio"}
    ledger = orjson.loads((tmp_path / "out" / "tasks" / "00000" / "flagged_words.json").read_bytes())
    assert ledger == {"removed": {"flagged_words.max_ratio": 1}}


def test_same_inputs_give_identical_rejects(tmp_path):
    path = EXAMPLES / "vi.txt"
    assert load_flagged_words(str(path), "vi") == load_flagged_words(str(path), "vi")
    texts = ["Tôi xem phim sex", "Hôm nay trời đẹp", "đồ chó đồ ngu", "Con đĩ"]
    outputs = []
    for run in ("one", "two"):
        _run(tmp_path / run, "vi", str(path), 0.2, [Document(text=t, id=str(i)) for i, t in enumerate(texts)])
        outputs.append((tmp_path / run / "rejects" / "flagged_words" / "00000.jsonl.gz").read_bytes())
    assert outputs[0] == outputs[1] and len(gzip.decompress(outputs[0]).splitlines()) == 3


@pytest.mark.parametrize(
    "content, line, message",
    [
        (b"porn\n# comment\n\n\xff\xfebad\n", 4, "not UTF-8"),
        (b"porn\n  ***  \n", 2, "no word characters"),
        (b"# header\n" + " ".join(["word"] * (MAX_ENTRY_WORDS + 1)).encode() + b"\n", 2, f"more than the {MAX_ENTRY_WORDS}"),
    ],
)
def test_a_junk_line_is_an_error_naming_file_and_line(tmp_path, content, line, message):
    path = tmp_path / "junk.txt"
    path.write_bytes(content)
    with pytest.raises(AuroraError, match=re.escape(f"{path}:{line}: ") + ".*" + re.escape(message)):
        load_flagged_words(str(path), "en")


def test_a_missing_or_empty_list_is_an_error(tmp_path):
    with pytest.raises(AuroraError, match=re.escape(f"flagged-words list {tmp_path / 'absent.txt'} not found")):
        load_flagged_words(str(tmp_path / "absent.txt"), "en")
    for content in ("", "# only a comment\n\n   \n"):
        (tmp_path / "empty.txt").write_text(content)
        with pytest.raises(AuroraError, match="has no entries"):
            load_flagged_words(str(tmp_path / "empty.txt"), "en")


def test_the_filter_stops_on_a_junk_list(tmp_path):
    path = tmp_path / "junk.txt"
    path.write_bytes(b"porn\n\xc3\n")
    with pytest.raises(AuroraError, match=re.escape(f"{path}:2: not UTF-8")):
        _run(tmp_path / "out", "en", str(path), 0.1, [Document(text="hello", id="a")])


@pytest.mark.parametrize("language", LANGUAGES)
def test_example_lists_load_and_flag_their_entries_inside_text(language):
    path = EXAMPLES / f"{language}.txt"
    assert path.read_text(encoding="utf-8").startswith("# Example flagged-words list for")
    flagged = load_flagged_words(str(path), language)
    assert 12 <= len(flagged.entries) <= 30
    entries = [line for line in path.read_text(encoding="utf-8").splitlines() if line and not line.startswith("#")]
    # Between other words, unspaced in Japanese: the segmenter must still cut the entry out.
    template = "今日は雨だった。{}。明日は晴れる。" if language == "ja" else "it rained {} today"
    for entry in entries:
        assert ratio(template.format(entry), language, flagged) > 0, entry


@pytest.mark.parametrize("language", LANGUAGES)
def test_example_lists_flag_almost_no_real_clean_sentence(language):
    sentences = corpus_sentences(language)
    flagged = load_flagged_words(str(EXAMPLES / f"{language}.txt"), language)
    clean = sum(ratio(s, language, flagged) == 0 for s in sentences) / len(sentences)
    assert clean > 0.99, (language, clean)


def test_a_byte_order_mark_does_not_make_the_first_comment_an_entry(tmp_path):
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbf# list of bad words for testing\r\nbadword\r\n")
    assert load_flagged_words(str(path), "en").entries == frozenset({("badword",)})


def test_an_entry_of_a_million_characters_is_refused(tmp_path):
    path = tmp_path / "long.txt"
    path.write_text("ok\n" + "x" * 1_000_000 + "\n")
    with pytest.raises(AuroraError, match=":2: entry of 1,000,000 characters"):
        load_flagged_words(str(path), "en")
