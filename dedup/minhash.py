"""Shingles, MinHash signatures, exact-duplicate digests and the LSH parameters.

Shingles are word n-grams (n = 5 by default) of the lower-cased normalized text; Japanese,
which has no spaces, uses character n-grams. Each word is hashed once per batch (BLAKE2b), and
n-gram hashes are combined from word hashes with numpy, so no Python code runs per shingle.
The MinHash itself is datasketch's `affine32` scheme (its seeded permutations and its MurmurHash3
pre-mix), applied to a whole batch of documents at once: the pre-mix with numpy, the permutations'
minimums in one loop of C (`dedup/_minhash.c`, 12x numpy's passes). A test checks that each
signature is the one datasketch's `MinHash.update_batch` gives on the same shingle hashes. The
scheme's permutations and pre-mix are a few lines of numpy here, as datasketch 2 makes them (a
test compares them with datasketch's): importing datasketch imports its LSH and scipy, 0.57 CPU s
and 37 MiB in the executor's fork server, which every worker forked from it then counted in its
resident memory.

The exact-duplicate key is the 128-bit BLAKE2b digest of the normalized text.

LSH bands and rows are chosen for recall at the threshold (`lsh_params`); the candidates are then
verified, so the bands only decide what is compared, not what is merged.
"""

import hashlib
from functools import cached_property

import numpy as np

from core.text import words
from dedup import _minhash

_NGRAM_MULTIPLIER = np.uint64(0x100000001B3)  # FNV-1a's 64-bit prime: mixes each position in
_FMIX32 = (np.uint32(16), np.uint32(0x85EBCA6B), np.uint32(13), np.uint32(0xC2B2AE35), np.uint32(16))  # MurmurHash3's


def affine32_permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch 2's affine32 permutations h -> a * h + b modulo 2^32 (a odd, so a bijection),
    drawn as it draws them: numpy's RandomState(seed), the a's then the b's, as uint32."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def fmix32(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer on uint32 values (wrapping), datasketch's pre-mix of each
    shingle hash before the permutations."""
    s1, m1, s2, m2, s3 = _FMIX32
    values = values ^ (values >> s1)
    values = values * m1
    values = values ^ (values >> s2)
    values = values * m2
    return values ^ (values >> s3)


def mix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer: each uint64 to a well-spread uint64 (a bijection)."""
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def candidate_probability(jaccard, bands: int, rows: int):
    """The chance that two documents of this Jaccard similarity share at least one band:
    1 - (1 - J^rows)^bands (each of `rows` MinHash values agrees with probability J)."""
    return 1 - (1 - np.asarray(jaccard, dtype=np.float64) ** rows) ** bands


def lsh_params(threshold: float, num_perm: int, recall: float) -> tuple[int, int]:
    """Bands and rows (bands x rows <= num_perm) under which a pair at exactly the threshold is a
    candidate with probability at least `recall`; of those, the one with the fewest expected
    candidates below the threshold (the area under the S-curve from 0 to the threshold), since
    each costs a verification. At 0.8 and 128 permutations, recall 0.95 gives 13 bands of 7 rows
    (0.953 at 0.8), where datasketch's balanced optimum, 9 x 13, finds a pair at 0.8 only 40% of
    the time."""
    below = np.linspace(0, threshold, 1001)
    best = None
    for rows in range(1, num_perm + 1):
        for bands in range(1, num_perm // rows + 1):
            if candidate_probability(threshold, bands, rows) < recall:
                continue
            cost = float(np.trapezoid(candidate_probability(below, bands, rows), below))
            if best is None or cost < best[0]:
                best = (cost, bands, rows)
            break  # more bands of these rows only add candidates
    if best is None:  # recall 1.0 at any threshold needs every row its own band
        return num_perm, 1
    return best[1], best[2]


def exact_digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def _word_hash(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")


class MinHasher:
    """Shingle hashes and MinHash signatures of a batch of documents, for one language."""

    def __init__(self, language: str, num_perm: int = 128, seed: int = 1, ngram: int = 5):
        self.language, self.num_perm, self.seed, self.ngram = language, num_perm, seed, ngram

    @cached_property
    def permutations(self) -> tuple[np.ndarray, np.ndarray]:
        return affine32_permutations(self.num_perm, self.seed)

    def units(self, text: str, cache: dict) -> np.ndarray:
        """One uint64 per word of the lower-cased text (per character for ja): the sequence the
        n-grams are taken over. Outside ja there is one per word of `text` itself, which the
        documents file counts: lower-casing changes no character's word class (a test checks every
        code point). `cache` keeps each word's hash for the batch."""
        if self.language == "ja":  # code points are under 2^21: mixed to 64 bits, so the last of an n-gram counts too
            return mix64(np.frombuffer(text.lower().encode("utf-32-le"), dtype=np.uint32))
        units = []
        for word in words(text.lower(), self.language):
            value = cache.get(word)
            if value is None:
                value = cache[word] = _word_hash(word)
            units.append(value)
        return np.array(units, dtype=np.uint64)

    def shingle_hashes(self, text: str, cache: dict | None = None) -> np.ndarray:
        return self.shingles(text, self.units(text, {} if cache is None else cache))

    def shingles(self, text: str, units: np.ndarray) -> np.ndarray:
        """The 32-bit hash of every n-gram of the text's `units`; a text shorter than n is one
        shingle, the whole of it."""
        if len(units) < self.ngram:
            units = np.array([_word_hash(text)], dtype=np.uint64) if len(units) == 0 else units
            count, n = 1, len(units)
        else:
            count, n = len(units) - self.ngram + 1, self.ngram
        combined = np.zeros(count, dtype=np.uint64)
        for k in range(n):
            combined = combined * _NGRAM_MULTIPLIER + units[k : k + count]
        return (combined >> np.uint64(32)).astype(np.uint32)

    def signatures(self, texts: list[str]) -> np.ndarray:
        """(documents, num_perm) uint32: each row is datasketch's MinHash of that text's shingles."""
        cache: dict = {}
        return self.signatures_of([self.shingle_hashes(t, cache) for t in texts])

    def signatures_of(self, shingles: list[np.ndarray]) -> np.ndarray:
        """The signatures of documents given by their shingle hashes."""
        a, b = self.permutations
        lengths = np.array([len(s) for s in shingles], dtype=np.int64)
        hashes = fmix32(np.concatenate(shingles) if shingles else np.empty(0, np.uint32))
        out = np.full((len(shingles), self.num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)  # datasketch's empty MinHash
        _minhash.minimums(hashes, lengths, a, b, out)
        return out
