import random
import unicodedata

import regex

from core.text import AFTER_APOSTROPHE, WORD_CHARACTERS, normalize, words


def test_nfc_composes_and_keeps_vietnamese_tone_marks():
    decomposed = unicodedata.normalize("NFD", "Tiếng Việt có dấu thanh: ả, ỹ, ặ, ườ.")
    out = normalize(decomposed)
    assert out == "Tiếng Việt có dấu thanh: ả, ỹ, ặ, ườ."
    assert unicodedata.normalize("NFD", out) == decomposed  # no mark was dropped


def test_devanagari_signs_survive_and_stay_in_their_words():
    text = "हिन्दी में संख्याएँ और चाँद"
    assert normalize(text) == text
    assert words(text, "hi") == ["हिन्दी", "में", "संख्याएँ", "और", "चाँद"]


def test_japanese_dakuten_survive_and_words_come_from_the_segmenter():
    decomposed = "カ\u3099ラス"  # ガラス written with a combining dakuten
    assert normalize(decomposed) == "ガラス"
    assert words("私は東京で寿司を食べました。", "ja") == ["私", "は", "東京", "で", "寿司", "を", "食べ", "まし", "た"]


def test_latin_words_unicode_aware():
    assert words("Hyvää päivää, naïve café-owner!", "fi") == ["Hyvää", "päivää", "naïve", "café", "owner"]


def test_whitespace_folding_keeps_lines_and_marks():
    text = "  Tiê\u0301ng   Việt\t\tcó\u00a0dấu\r\n\n\n\nहिन्दी  \n "
    assert normalize(text) == "Tiếng Việt có dấu\n\nहिन्दी"


def test_japanese_words_are_segmented_once_for_the_steps_that_ask_and_the_cache_is_bounded(monkeypatch):
    import core.text as text_module

    segmented = []
    segment = text_module._japanese_segmenter()
    monkeypatch.setattr(text_module, "_japanese_segmenter", lambda: lambda piece: segmented.append(piece) or segment(piece))
    cache = text_module.SegmentedDocuments(max_chars=40)
    monkeypatch.setattr(text_module, "_JAPANESE_WORDS", cache)
    documents = [f"東京に行きます。{i}日目です。" for i in range(6)]  # 14 characters each
    first = [words(d, "ja") for d in documents[:2]]
    assert [words(d, "ja") for d in documents[:2]] == first and len(segmented) == 2  # the second ask is kept
    for d in documents[2:]:
        words(d, "ja")
    assert cache.chars <= 40 and len(cache.entries) == 2 and documents[0] not in cache.entries  # the oldest leave
    assert words(documents[0], "ja") == first[0] and len(segmented) == 7


def normalize_by_definition(text: str) -> str:
    """`normalize` in the regex module's terms: its \\s is Unicode's White_Space (str.isspace also
    takes \\x1c-\\x1f), str.strip takes str.isspace's."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    text = regex.sub(r"[^\S\n]+", " ", text)
    text = regex.sub(r" *\n *", "\n", text)
    return regex.sub(r"\n{3,}", "\n\n", text).strip()


def test_white_space_folds_as_its_definition_for_every_character():
    """core/_text_stats.c's `fold_white_space` (normalize's folding, one pass) gives what the
    definition's regular expressions give, for every code point (surrogates included) in runs of
    white space, beside newlines and at the ends, and on random text of every kind of white space."""
    every = [chr(c) for c in range(0x110000)]
    for context in ("a{}b", "a {}\n {}\n\n\n{}b", "x{}{} {}\ty\u3000{}\x85"):
        for part in (every[:0x10000], every[0x10000:]):
            text = "|".join(context.replace("{}", c) for c in part)  # "|" ends every run: each context folds alone
            assert normalize(text) == normalize_by_definition(text)
    assert normalize("\u3000a\u3000b\u3000") == "a b" and hash(normalize("\u3000a")) == hash("a")  # a str of the narrowest kind
    white = [c for c in every if c.isspace()] + ["\n", "\r", "a", "é", "क", "😀", "\ud800", "\x00"]
    rng = random.Random(0)
    for _ in range(20_000):
        text = "".join(rng.choice(white) for _ in range(rng.randint(0, 30)))
        assert normalize(text) == normalize_by_definition(text), repr(text)


def test_japanese_words_keep_white_space_that_mecab_puts_in_a_surface():
    """MeCab groups some white space with the letters before it (\\x1c-\\x1f survive normalize);
    the words are fugashi's node surfaces, whatever fugashi's own output strips."""
    import fugashi

    tagger = fugashi.Tagger()
    for text in ("猫です。ก\x1c", "猫です。ก\x1c\n犬です。", "한국\x1f\n犬", "\x1cก猫"):
        expected = [m.surface for m in tagger(text) if regex.search(r"[\p{L}\p{N}]", m.surface)]
        assert words(text, "ja") == expected


WORD = regex.compile(f"[{WORD_CHARACTERS}]+(?:['’][{AFTER_APOSTROPHE}]+)*")


def test_words_are_the_regex_modules_for_every_character():
    """core/_text_stats.c's `split_words` finds the words the regular expression of their definition
    finds in the regex module, for every code point (the plane's and beyond), alone and beside an
    apostrophe, a letter, a mark and a digit, and in random text."""
    every = "".join(chr(c) for c in range(0x110000) if not 0xD800 <= c < 0xE000)
    for context in ("{}", "a'{}", "a’{}b", "{}'b", "\u0301{}x", "{}’’a'1b'"):
        for part in (every[:0x10000], every[0x10000:]):
            text = "\n".join(context.format(c) for c in part)
            assert words(text, "en") == WORD.findall(text)
    rng = random.Random(0)
    pieces = ["'", "’", "a", "1", "_", "\u0301", "\u200c", " ", "é", "क", "्", "😀", "𠀋", "\n", "-"]
    for _ in range(3000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        assert words(text, "vi") == WORD.findall(text), repr(text)


def test_a_japanese_morpheme_is_a_word_when_the_regex_module_finds_a_letter_or_digit_in_it():
    """core/_text_stats.c's `words_with` keeps the morphemes that hold a letter or digit, for every code point."""
    from core.text import _morpheme_words

    has_letter_or_digit = regex.compile(r"[\p{L}\p{N}]")
    for part in (range(0xD800), range(0xE000, 0x10000), range(0x10000, 0x110000)):
        morphemes = [chr(c) + "。" for c in part] + ["。", "", "、、"]
        assert _morpheme_words(morphemes) == [m for m in morphemes if has_letter_or_digit.search(m)]


def test_words_keep_marks_and_apostrophes_beside_astral_characters():
    mixed = "Hôm nay 😀 trời đẹp, didn't किताबें 12_3 𠀋"
    assert words(mixed, "vi") == ["Hôm", "nay", "trời", "đẹp", "didn't", "किताबें", "12_3", "𠀋"]
    assert words(mixed[:-2], "vi") == words(mixed, "vi")[:-1]
