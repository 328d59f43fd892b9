"""Dedup: signatures equal datasketch's, LSH candidates equal MinHashLSH's, clusters against
brute-force Jaccard, and the decisions' rules (first copy kept, exact before near)."""

import gzip
import itertools
import random

import numpy as np
import orjson
import pyarrow.parquet as pq
import pytest
from datasketch import MinHash, MinHashLSH
from datatrove.data import Document
from datatrove.io import get_datafolder
from scipy.sparse import csr_matrix

from core.errors import AuroraError
from core.text import words
from filters.dedup import DedupBands, DedupClusters, DedupDocuments, DedupFilter, DedupLayout, DedupSignatures, lsh_params
from filters.dedup.bands import band_edges
from filters.dedup.clusters import clusters
from filters.dedup.layout import global_ids
from filters.dedup.minhash import MinHasher
from pipeline.recipe import load_recipe
from tooling.sample import sample_sentences

THRESHOLD = 0.8
BANDS, ROWS = lsh_params(THRESHOLD, 128)
LAYOUT = DedupLayout()
CLUSTERS_FILE = LAYOUT.clusters


def _vocabulary() -> list[str]:
    return sorted({w.lower() for s in sample_sentences("en") for w in words(s, "en")})


def planted_corpus(seed: int, families: int = 1500, variants: int = 3500) -> list[str]:
    """Random-word documents, plus variants of some of them with 0 to 10% of words replaced:
    their Jaccard similarity to the original spreads over roughly 0.4 to 1."""
    rng = random.Random(seed)
    vocabulary = _vocabulary()
    originals = [[rng.choice(vocabulary) for _ in range(rng.randint(80, 300))] for _ in range(families)]
    texts = [" ".join(doc) for doc in originals]
    for _ in range(variants):
        doc, rate = list(rng.choice(originals)), rng.uniform(0, 0.1)
        texts.append(" ".join(rng.choice(vocabulary) if rng.random() < rate else w for w in doc))
    rng.shuffle(texts)
    return texts


def run_dedup(path, tasks: list[list[str]], memory_mb: float = 512, language: str = "en"):
    """The signatures, bands and clusters steps, run in turn on a local folder."""
    folder = get_datafolder(str(path))
    for rank, texts in enumerate(tasks):
        docs = (Document(text=t, id=f"t{rank}-{i}", metadata={}) for i, t in enumerate(texts))
        list(DedupSignatures(folder, LAYOUT, language, 128, 1, 5).run(docs, rank=rank))
    for band in range(BANDS + 1):
        list(DedupBands(folder, LAYOUT, len(tasks), 128, BANDS, ROWS, memory_mb).run(None, rank=band))
    list(DedupClusters(folder, LAYOUT, len(tasks), BANDS).run(None, rank=0))
    return folder


def _signatures(folder, tasks: int) -> np.ndarray:
    return np.concatenate([
        np.frombuffer(folder.open(LAYOUT.signatures(t), "rb").read(), dtype=np.uint32).reshape(-1, 128)
        for t in range(tasks)
    ])


@pytest.mark.parametrize("language", ["en", "vi", "ja"])
def test_signatures_are_datasketch_minhashes_of_the_same_shingles(language):
    hasher = MinHasher(language)
    texts = sample_sentences(language)[:200] + ["short text", "!!!"]
    signatures = hasher.signatures(texts)
    for text, signature in zip(texts, signatures):
        expected = MinHash(num_perm=128, seed=1, scheme="affine32", hashfunc=int)
        expected.update_batch(hasher.shingle_hashes(text).tolist())
        assert np.array_equal(signature, expected.hashvalues), text


def test_shingles_are_word_five_grams_and_japanese_character_five_grams():
    hasher = MinHasher("en")
    assert len(hasher.shingle_hashes("one two three four five six seven")) == 3
    assert len(set(hasher.shingle_hashes("a b c d e a b c d e"))) == 5
    assert np.array_equal(hasher.shingle_hashes("One, two: THREE four five."), hasher.shingle_hashes("one two three four five"))
    assert len(MinHasher("ja").shingle_hashes("吾輩は猫である。名前")) == 6
    # Tone marks are letters: these Vietnamese words differ only in them.
    assert not np.array_equal(MinHasher("vi").shingle_hashes("ma ma ma ma ma"), MinHasher("vi").shingle_hashes("mà mả mã má mạ"))


def test_lsh_parameters_are_datasketchs():
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=128)
    assert (BANDS, ROWS) == (lsh.b, lsh.r)


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    texts = planted_corpus(seed=0)
    tasks = [texts[i::3] for i in range(3)]  # three filter tasks, interleaved
    order = [t for task in tasks for t in task]  # the documents in global-id order
    ids = np.concatenate([global_ids(t, len(task)) for t, task in enumerate(tasks)])
    folder = run_dedup(tmp_path_factory.mktemp("planted"), tasks, memory_mb=0.05)  # several sort partitions
    return order, ids, folder, tasks


def test_candidate_pairs_equal_datasketch_minhashlsh(planted):
    order, ids, folder, tasks = planted
    assert len(order) >= 5000
    signatures = _signatures(folder, len(tasks))
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=128, params=(BANDS, ROWS))
    for gid, signature in zip(ids.tolist(), signatures):
        lsh.insert(gid, MinHash(num_perm=128, seed=1, scheme="affine32", hashvalues=signature))
    expected = set()
    for gid, signature in zip(ids.tolist(), signatures):
        for other in lsh.query(MinHash(num_perm=128, seed=1, scheme="affine32", hashvalues=signature)):
            if other != gid:
                expected.add((min(gid, other), max(gid, other)))

    ours = set()
    for band in range(BANDS):
        edges = np.frombuffer(folder.open(LAYOUT.band_edges(band), "rb").read(), dtype=np.uint64).reshape(-1, 2)
        groups: dict[int, set] = {}
        for member, first in edges.tolist():
            groups.setdefault(first, {first}).add(member)
        for group in groups.values():
            ours.update(itertools.combinations(sorted(group), 2))
    assert len(expected) > 1000
    assert ours == expected


def test_partitioning_does_not_change_the_bands(planted, tmp_path):
    order, ids, folder, tasks = planted
    whole = run_dedup(tmp_path, tasks, memory_mb=512)  # one partition per band
    for band in range(BANDS + 1):  # the same edges; their order follows the partitions
        path = LAYOUT.band_edges(band)
        edges = [sorted(np.frombuffer(f.open(path, "rb").read(), np.uint64).reshape(-1, 2).tolist()) for f in (whole, folder)]
        assert edges[0] == edges[1]
    assert whole.open(CLUSTERS_FILE, "rb").read() == folder.open(CLUSTERS_FILE, "rb").read()


def _jaccard_pairs(texts: list[str]) -> dict[tuple[int, int], float]:
    """Exact Jaccard similarity of the 5-gram shingle sets of every pair that shares a shingle."""
    hasher, rows, columns, vocabulary = MinHasher("en"), [], [], {}
    for i, text in enumerate(texts):
        for shingle in set(hasher.shingle_hashes(text).tolist()):
            rows.append(i)
            columns.append(vocabulary.setdefault(shingle, len(vocabulary)))
    matrix = csr_matrix((np.ones(len(rows), dtype=np.int32), (rows, columns)), shape=(len(texts), len(vocabulary)))
    sizes = np.asarray(matrix.sum(axis=1)).ravel()
    shared = (matrix @ matrix.T).tocoo()
    upper = shared.row < shared.col
    i, j, both = shared.row[upper], shared.col[upper], shared.data[upper]
    return {(a, b): n / (sizes[a] + sizes[b] - n) for a, b, n in zip(i.tolist(), j.tolist(), both.tolist())}


def test_clusters_against_brute_force_jaccard(planted):
    order, ids, folder, tasks = planted
    jaccard = _jaccard_pairs(order)
    table = pq.read_table(folder.open(CLUSTERS_FILE, "rb")).to_pylist()
    name_to_index = {f"t{t}-{i}": k for k, (t, i) in enumerate((t, i) for t, task in enumerate(tasks) for i in range(len(task)))}
    cluster = {name_to_index[row["id"]]: row["cluster_id"] for row in table}

    similar = [pair for pair, j in jaccard.items() if j >= THRESHOLD + 0.1]
    found = sum(a in cluster and cluster.get(a) == cluster.get(b) for a, b in similar)
    assert len(similar) > 500 and found / len(similar) >= 0.95

    partners: dict[int, list[tuple[int, float]]] = {}
    for (a, b), j in jaccard.items():
        partners.setdefault(a, []).append((b, j))
        partners.setdefault(b, []).append((a, j))
    removed = [name_to_index[row["id"]] for row in table if not row["kept"]]
    justified = sum(
        any(j >= THRESHOLD - 0.1 and cluster.get(other) == cluster[doc] for other, j in partners.get(doc, []))
        for doc in removed
    )
    assert len(removed) > 500 and justified / len(removed) >= 0.95


def test_exact_duplicates_go_first_and_each_cluster_keeps_its_first_document():
    a, b, c, d, e = (np.uint64(x) for x in (1, 2, 3, 1 << 32, (1 << 32) + 1))
    exact = np.array([[d, a]], dtype=np.uint64)  # d is a copy of a
    near = [np.array([[b, a], [d, a]], dtype=np.uint64), np.array([[c, b], [e, d]], dtype=np.uint64)]
    decided = clusters(exact, near)
    rows = {int(i): (int(k), int(n), s, int(o)) for i, k, n, s, o in zip(*decided.values())}
    assert rows == {
        1: (1, 4, "kept", 1),
        2: (1, 4, "near_duplicate", 1),
        3: (1, 4, "near_duplicate", 1),
        1 << 32: (1, 4, "exact_duplicate", 1),
    }  # e's only edge was to the exact copy d, which left the near-duplicate graph
    assert band_edges(np.array([[5, 1], [5, 1], [4, 0]], np.uint32), np.array([9, 3, 7], np.uint64)).tolist() == [[9, 3]]


def test_exact_duplicates_are_found_across_tasks(tmp_path):
    folder = run_dedup(tmp_path, [["same text here", "other text"], ["same text here", "same text here"]])
    table = pq.read_table(folder.open(CLUSTERS_FILE, "rb")).to_pylist()
    assert table == [
        {"id": "t0-0", "cluster_id": "t0-0", "cluster_size": 3, "kept": True},
        {"id": "t1-0", "cluster_id": "t0-0", "cluster_size": 3, "kept": False},
        {"id": "t1-1", "cluster_id": "t0-0", "cluster_size": 3, "kept": False},
    ]
    decisions = pq.read_table(folder.open(LAYOUT.decisions(1), "rb")).to_pylist()
    assert {d["status"] for d in decisions} == {"exact_duplicate"} and {d["duplicate_of"] for d in decisions} == {"t0-0"}


def test_dedup_filter_joins_decisions_by_key_whatever_the_order(tmp_path):
    folder = run_dedup(tmp_path, [["same text here", "other text"], ["fresh words", "same text here", "other text", "lonely line"]])
    docs = list(DedupDocuments(folder, LAYOUT).run(None, rank=1))
    random.Random(0).shuffle(docs)
    assert [d.id for d in docs] != sorted(d.id for d in docs)
    kept = {d.id: d.metadata for d in DedupFilter(folder, LAYOUT).run(iter(docs), rank=1)}
    with gzip.open(folder.open("rejects/dedup/00001.jsonl.gz", "rb")) as f:
        removed = {r["id"]: r for r in map(orjson.loads, f)}
    assert kept == {"t1-0": {"cluster_id": "t1-0", "cluster_size": 1}, "t1-3": {"cluster_id": "t1-3", "cluster_size": 1}}
    assert {i: (r["reason"], r["metadata"]) for i, r in removed.items()} == {
        "t1-1": ("exact_duplicate", {"cluster_id": "t0-0", "cluster_size": 2, "duplicate_of": "t0-0"}),
        "t1-2": ("exact_duplicate", {"cluster_id": "t0-1", "cluster_size": 2, "duplicate_of": "t0-1"}),
    }
    with pytest.raises(ValueError, match="has no 'dedup_key'"):  # a document without its key is an error, not kept
        list(DedupFilter(folder, LAYOUT).run(iter([Document(text="x", id="t1-0", metadata={})]), rank=1))


@pytest.mark.parametrize("section, message", [
    ("{bands: 9}", "give both 'dedup.bands' and 'dedup.rows'"),
    ("{bands: 20, rows: 10}", "must not exceed dedup.num_perm"),
    ("{threshold: 1.5}", "'dedup.threshold' must be between 0 and 1"),
    ("{num_perm: 0}", "'dedup.num_perm' must be a positive integer"),
    ("{shingle: 3}", "unknown key 'dedup.shingle'"),
])
def test_bad_dedup_settings_are_one_line_errors(workspace, tmp_path, section, message):
    text = (workspace / "recipes/demo/en.yaml").read_text()
    start = text.index("\ndedup:")
    end = text.index("\ntokenize:")
    path = tmp_path / "en.yaml"
    path.write_text(text[:start] + f"\ndedup: {section}" + text[end:])
    with pytest.raises(AuroraError, match=message.replace("(", r"\(").replace("'", "'")):
        load_recipe(str(path))


def test_dedup_defaults_follow_datasketch(workspace):
    settings = load_recipe(str(workspace / "recipes/demo/en.yaml")).dedup
    assert settings | {"memory_mb": 0} == {"threshold": 0.8, "num_perm": 128, "ngram": 5, "seed": 1,
                                            "bands": BANDS, "rows": ROWS, "memory_mb": 0}
