"""Text normalization and word counting shared by every step.

Normalization is Unicode NFC only: it composes characters and never drops combining marks,
so Vietnamese tone marks, Devanagari matras and viramas, and Japanese dakuten survive
(CCNet's and datatrove's default normalizers strip category Mn; we do not).
"""

import unicodedata

import regex

# Letters with their combining marks, digits and joiners form one word: "हिन्दी" stays whole.
_WORD = regex.compile(r"[\p{L}\p{M}\p{N}_\u200c\u200d]+")
# Japanese has no spaces: a word is a run of one script (kanji, hiragana, katakana, other letters, digits).
_JA_WORD = regex.compile(
    r"\p{Han}+|[\p{Hiragana}\u30fc]+|[\p{Katakana}\u30fc]+|[\p{L}\p{M}]+|\p{N}+"
)


def normalize(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def words(text: str, language: str) -> list[str]:
    """Split text into words: script runs for Japanese, letter-and-mark runs elsewhere."""
    if language == "ja":
        return _JA_WORD.findall(text)
    return _WORD.findall(text)
