"""Dedup quality: recall by true similarity and false merges, ours against datasketch and datatrove on one planted corpus.

The corpus is pairs of documents whose similarity is known exactly. A base document is N random
units (en: words of a 50,000-token synthetic vocabulary, 100 to 400 words; ja: CJK ideographs and
hiragana without spaces, 300 to 1000 characters), so unrelated documents share no 5-gram; its
variant replaces k randomly chosen units with different random ones, k aimed at a target
similarity. Each pair's true Jaccard similarity is that of the two documents' 5-gram sets (en: of
the lower-cased `text.split()` words; ja: of the lower-cased characters), computed exactly with
Python sets. Pairs are bucketed by it and generated until every bucket has `--pairs` of them (pairs
landing in a full bucket are dropped). Every document belongs to exactly one pair; all documents
are shuffled and spread over 3 filter tasks, as input files would be.

The systems, on the same documents:

1. ours: `DedupSignatures` then the `dedup_passes` with the defaults (threshold 0.8, 128 hashes,
   bands and rows for recall 0.95 at the threshold, candidates verified on the shingle sets).
   Clusters are read from `clusters.parquet`.
2. ours with `verify="none"`: the same LSH bands, every candidate merged: what verification buys.
3. datasketch `MinHashLSH(threshold=0.8, num_perm=128)` (its own bands and rows) on our very
   signatures; every document inserted, then queried; candidates merged with union-find, no
   verification, as its users typically do. Its time excludes the signatures.
4. datatrove's `MinhashDedupSignature`, `MinhashDedupBuckets` and `MinhashDedupCluster` with
   FineWeb's 14 buckets of 8 hashes, in this process; clusters read from its `.clusters` files
   (`save_cluster_id`). Its shingles are its own (word 5-grams of its normalized text). Its
   Japanese word tokenizer needs SudachiPy; where that is missing it runs on en only.

A pair is found when its two documents end up in one cluster. For each bucket and system, the
share of pairs found; the false-merge rate is that share over the pairs with J < threshold - 0.1.
Documents merged with a document of another pair (never similar) are counted too. Targets, for
ours: recall >= 0.95 at J >= 0.85, >= 0.90 at 0.8 <= J < 0.85, false merges <= 1% at J < 0.7.
Also for ours: at most 1% merged at threshold - 0.1 <= J < threshold (verification is exact).
Exit status 1 when ours misses one.

    .venv/bin/python bench/dedup_quality.py [--pairs 300] [--languages en ja] [--seed 0]
"""

import argparse
import os
import random
import shutil
import string
import sys
import tempfile
import time

os.environ.setdefault("TQDM_DISABLE", "1")  # datatrove's clustering step shows a progress bar
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # not bench/: its tokenize.py would shadow the standard one

from dataclasses import dataclass  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from datatrove.data import Document  # noqa: E402
from datatrove.io import get_datafolder  # noqa: E402
from datatrove.utils.logging import logger  # noqa: E402

from dedup import DedupLayout, DedupSignatures, dedup_passes, lsh_params  # noqa: E402
from dedup.passes import run_in_process  # noqa: E402

THRESHOLD, NUM_PERM, SEED, NGRAM, RECALL, TASKS = 0.8, 128, 1, 5, 0.95, 3
BANDS, ROWS = lsh_params(THRESHOLD, NUM_PERM, RECALL)
DATATROVE_BUCKETS, DATATROVE_HASHES = 14, 8  # FineWeb's setting
LAYOUT = DedupLayout()
BUCKETS = [(0.5, 0.6), (0.6, 0.7), (0.7, 0.75), (0.75, 0.8), (0.8, 0.85), (0.85, 0.9), (0.9, 1.0)]
FALSE_MERGE_BELOW = THRESHOLD - 0.1
# (low, high, least recall) for ours; buckets under FALSE_MERGE_BELOW may merge at most FALSE_MERGE_TARGET of their pairs.
RECALL_TARGETS = [(0.85, 1.0, 0.95), (0.8, 0.85, 0.90)]
FALSE_MERGE_TARGET = 0.01
LENGTHS = {"en": (100, 400), "ja": (300, 1000)}


@dataclass
class Corpus:
    language: str
    buckets: list[int]  # per pair: its bucket; pair i's documents are f"{i}a" and f"{i}b"
    tasks: list[list[tuple[str, str]]]  # per filter task: (id, text), shuffled


def bucket_of(jaccard: float) -> int | None:
    for b, (low, high) in enumerate(BUCKETS):
        if low <= jaccard < high or (jaccard == high == 1.0):
            return b
    return None


def true_jaccard(a: str, b: str, language: str) -> float:
    """Exact Jaccard similarity of the two texts' sets of 5-grams (words for en, characters for ja)."""
    def grams(text):
        units = list(text.lower()) if language == "ja" else text.lower().split()
        return set(zip(*(units[i:] for i in range(NGRAM))))
    x, y = grams(a), grams(b)
    return len(x & y) / len(x | y)


def alphabet(language: str, rng: random.Random) -> list[str]:
    """The units documents are drawn from: 50,000 random lower-case tokens, or CJK ideographs and hiragana."""
    if language == "ja":
        return [chr(c) for c in range(0x4E00, 0xA000)] + [chr(c) for c in range(0x3041, 0x3097)]
    vocabulary: set[str] = set()
    while len(vocabulary) < 50_000:
        vocabulary.add("".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))))
    return sorted(vocabulary)


def replacements(units: int, target: float) -> int:
    """How many of `units` to replace for a Jaccard similarity near `target`: a pair sharing all but d
    of its S n-grams has J = (S - d) / (S + d), and n-gram i survives when none of its n units is
    replaced, with probability (1 - k / units) ** n."""
    shingles = units - NGRAM + 1
    lost = shingles * (1 - target) / (1 + target)
    return max(1, round(units * (1 - (1 - lost / shingles) ** (1 / NGRAM))))


def planted_corpus(language: str, per_bucket: int, seed: int) -> Corpus:
    rng = random.Random(seed)
    units = alphabet(language, rng)
    joiner = "" if language == "ja" else " "
    counts, buckets, docs = [0] * len(BUCKETS), [], []
    while min(counts) < per_bucket:
        low, high = BUCKETS[rng.choice([b for b, c in enumerate(counts) if c < per_bucket])]
        length = rng.randint(*LENGTHS[language])
        base = rng.choices(units, k=length)
        variant = list(base)
        for i in rng.sample(range(length), replacements(length, rng.uniform(low, high))):
            while variant[i] == base[i]:
                variant[i] = rng.choice(units)
        first, second = joiner.join(base), joiner.join(variant)
        b = bucket_of(true_jaccard(first, second, language))
        if b is None or counts[b] >= per_bucket:
            continue
        counts[b] += 1
        docs += [(f"{len(buckets)}a", first), (f"{len(buckets)}b", second)]
        buckets.append(b)
    rng.shuffle(docs)
    return Corpus(language, buckets, [docs[t::TASKS] for t in range(TASKS)])


def _documents(task: list[tuple[str, str]]):
    return (Document(text=text, id=doc_id, metadata={}) for doc_id, text in task)


def union_find(ids, edges) -> dict[str, str]:
    """Connected components of the edges: document id -> component root, for components of two or more."""
    parent = {i: i for i in ids}

    def root(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[rb] = ra
    roots = {i: root(i) for i in ids}
    sizes: dict[str, int] = {}
    for r in roots.values():
        sizes[r] = sizes.get(r, 0) + 1
    return {i: r for i, r in roots.items() if sizes[r] > 1}


def ours(corpus: Corpus, tmp: str) -> dict[str, tuple[dict[str, str], float]]:
    """Our dedup, verified and not: {column: (clusters, seconds)}. The signatures are computed once
    and copied; each column's time is theirs plus its own passes."""
    folder = os.path.join(tmp, "ours")
    start = time.perf_counter()
    for rank, task in enumerate(corpus.tasks):
        step = DedupSignatures(get_datafolder(folder), LAYOUT, corpus.language, NUM_PERM, SEED, NGRAM, shingle_sets=True)
        list(step.run(_documents(task), rank=rank))
    signing = time.perf_counter() - start
    results = {}
    for verify in ("shingles", "none"):
        run_folder = os.path.join(tmp, f"ours-{verify}")
        shutil.copytree(folder, run_folder)
        settings = dict(threshold=THRESHOLD, num_perm=NUM_PERM, ngram=NGRAM, seed=SEED, memory_mb=512, recall=RECALL,
                        verify=verify, bands=BANDS, rows=ROWS)
        start = time.perf_counter()
        run_in_process(dedup_passes(get_datafolder(run_folder), LAYOUT, TASKS, settings))
        seconds = signing + time.perf_counter() - start
        table = pq.read_table(os.path.join(run_folder, LAYOUT.clusters), columns=["id", "cluster_id"])
        results[verify] = (dict(zip(table.column("id").to_pylist(), table.column("cluster_id").to_pylist())), seconds)
    return results


def datasketch_lsh(corpus: Corpus, tmp: str) -> tuple[dict[str, str], float, str]:
    """datasketch's MinHashLSH on our signatures (read from our run's files): (clusters, seconds, its bands x rows)."""
    from datasketch import MinHash, MinHashLSH

    rows = [np.fromfile(os.path.join(tmp, "ours", LAYOUT.signatures(t)), dtype=np.uint32).reshape(-1, NUM_PERM) for t in range(TASKS)]
    ids = [doc_id for task in corpus.tasks for doc_id, _ in task]
    start = time.perf_counter()
    permutations = MinHash(num_perm=NUM_PERM, seed=SEED, scheme="affine32").permutations
    sketches = [MinHash(num_perm=NUM_PERM, seed=SEED, scheme="affine32", hashvalues=row, permutations=permutations)
                for row in np.concatenate(rows)]
    lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
    for doc_id, sketch in zip(ids, sketches):
        lsh.insert(doc_id, sketch)
    edges = [(doc_id, other) for doc_id, sketch in zip(ids, sketches) for other in lsh.query(sketch) if other != doc_id]
    clusters = union_find(ids, edges)
    return clusters, time.perf_counter() - start, f"{lsh.b}x{lsh.r}"


def datatrove_minhash(corpus: Corpus, tmp: str) -> tuple[dict[str, str], float]:
    """datatrove's three MinHash steps, in this process: (clusters, seconds)."""
    from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupSignature

    config = MinhashConfig(num_buckets=DATATROVE_BUCKETS, hashes_per_bucket=DATATROVE_HASHES)
    signatures, buckets, clusters = (os.path.join(tmp, "datatrove", name) for name in ("signatures", "buckets", "clusters"))
    start = time.perf_counter()
    signature_step = MinhashDedupSignature(signatures, config=config, language=corpus.language)
    for rank, task in enumerate(corpus.tasks):
        signature_step.run(_documents(task), rank=rank, world_size=TASKS)  # not generators: they write their files and return
    buckets_step = MinhashDedupBuckets(signatures, buckets, config=config)
    for bucket in range(config.num_buckets):
        buckets_step.run(rank=bucket, world_size=config.num_buckets)
    MinhashDedupCluster(buckets, clusters, config=config, save_cluster_id=True).run(world_size=1)
    seconds = time.perf_counter() - start
    found = {}
    for rank, task in enumerate(corpus.tasks):
        path = os.path.join(clusters, f"{rank:06d}.clusters")  # (document index in the task, cluster id), uint32
        if os.path.exists(path):
            for position, cluster in np.fromfile(path, dtype=np.uint32).reshape(-1, 2).tolist():
                found[task[position][0]] = str(cluster)
    return found, seconds


def datatrove_unavailable(language: str) -> str | None:
    """Why datatrove's word tokenizer cannot run for this language here, or None."""
    try:
        from datatrove.utils.word_tokenizers import load_word_tokenizer

        load_word_tokenizer(language).word_tokenize("テスト" if language == "ja" else "test")
    except Exception as error:  # noqa: BLE001 - any failure of the tokenizer means datatrove cannot run
        return f"{type(error).__name__}: {str(error).split('. ')[0]}"
    return None


def measure(corpus: Corpus, clusters: dict[str, str]) -> tuple[list[float], int]:
    """Share of pairs found per bucket, and the documents in a cluster with a document of another pair."""
    found, total = [0] * len(BUCKETS), [0] * len(BUCKETS)
    for pair, bucket in enumerate(corpus.buckets):
        a, b = clusters.get(f"{pair}a"), clusters.get(f"{pair}b")
        total[bucket] += 1
        found[bucket] += a is not None and a == b
    pairs_of: dict[str, set[str]] = {}
    for doc_id, cluster in clusters.items():
        pairs_of.setdefault(cluster, set()).add(doc_id[:-1])
    unrelated = sum(1 for doc_id, cluster in clusters.items() if len(pairs_of[cluster]) > 1)
    return [f / t for f, t in zip(found, total)], unrelated


def false_merge_rate(corpus: Corpus, rates: list[float]) -> float:
    below = [b for b, (_, high) in enumerate(BUCKETS) if high <= FALSE_MERGE_BELOW + 1e-9]
    counts = [corpus.buckets.count(b) for b in below]
    return sum(rates[b] * c for b, c in zip(below, counts)) / sum(counts)


def bucket_name(b: int) -> str:
    low, high = BUCKETS[b]
    return f"[{low:.2f},{high:.2f}{']' if high == 1.0 else ')'}"


def evaluate(language: str, per_bucket: int, seed: int) -> list[str]:
    """Runs every system on one language's corpus and prints the table; returns ours's missed targets."""
    start = time.perf_counter()
    corpus = planted_corpus(language, per_bucket, seed)
    documents = sum(len(t) for t in corpus.tasks)
    print(f"\n{language}: {len(corpus.buckets):,} planted pairs ({per_bucket} per bucket), {documents:,} documents in {TASKS} tasks "
          f"(generated in {time.perf_counter() - start:.1f} s)")
    columns: dict[str, tuple[dict[str, str], float]] = {}
    with tempfile.TemporaryDirectory(prefix="dedup-quality-") as tmp:
        results = ours(corpus, tmp)
        columns[f"ours {BANDS}x{ROWS}"] = results["shingles"]
        columns[f"ours {BANDS}x{ROWS} no verify"] = results["none"]
        clusters, seconds, shape = datasketch_lsh(corpus, tmp)
        columns[f"datasketch {shape}"] = (clusters, seconds)
        unavailable = datatrove_unavailable(language)
        if unavailable is None:
            columns[f"datatrove {DATATROVE_BUCKETS}x{DATATROVE_HASHES}"] = datatrove_minhash(corpus, tmp)
    measured = {name: measure(corpus, clusters) for name, (clusters, _) in columns.items()}
    width = max(20, *(len(name) for name in columns))
    print(f"  {'true J':<26}{'pairs':>6}" + "".join(f"{name:>{width + 2}}" for name in columns))
    for b in range(len(BUCKETS)):
        label = bucket_name(b) + ("  false merges" if BUCKETS[b][1] <= FALSE_MERGE_BELOW + 1e-9 else "  recall" if BUCKETS[b][0] >= THRESHOLD else "")
        print(f"  {label:<26}{corpus.buckets.count(b):>6}" + "".join(f"{rates[b]:>{width + 2}.3f}" for rates, _ in measured.values()))
    print(f"  {f'false-merge rate J < {FALSE_MERGE_BELOW:.1f}':<32}"
          + "".join(f"{false_merge_rate(corpus, rates):>{width + 2}.3f}" for rates, _ in measured.values()))
    print(f"  {'docs merged across pairs':<32}" + "".join(f"{unrelated:>{width + 2},}" for _, unrelated in measured.values()))
    print(f"  {'wall time (s)':<32}" + "".join(f"{seconds:>{width + 2}.2f}" for _, seconds in columns.values()))
    print("  (datasketch's time excludes the signatures: it reuses ours)")
    if unavailable is not None:
        print(f"  datatrove: n/a for {language} ({unavailable})")

    rates = measured[f"ours {BANDS}x{ROWS}"][0]
    missed = []
    print(f"  targets for ours ({language}):")
    for low, high, least in RECALL_TARGETS:
        chosen = [b for b, (lo, hi) in enumerate(BUCKETS) if lo >= low and hi <= high]
        for b in chosen:
            ok = rates[b] >= least
            print(f"    recall {bucket_name(b):<14} {rates[b]:.3f} >= {least:.2f}  {'PASS' if ok else 'FAIL'}")
            if not ok:
                missed.append(f"{language} recall {bucket_name(b)} {rates[b]:.3f} < {least:.2f}")
    rate = false_merge_rate(corpus, rates)
    ok = rate <= FALSE_MERGE_TARGET
    print(f"    false merges J < {FALSE_MERGE_BELOW:.1f}  {rate:.3f} <= {FALSE_MERGE_TARGET:.2f}  {'PASS' if ok else 'FAIL'}")
    if not ok:
        missed.append(f"{language} false merges {rate:.3f} > {FALSE_MERGE_TARGET:.2f}")
    near = [b for b, (low, high) in enumerate(BUCKETS) if low >= FALSE_MERGE_BELOW - 1e-9 and high <= THRESHOLD]
    merged = sum(rates[b] * corpus.buckets.count(b) for b in near) / sum(corpus.buckets.count(b) for b in near)
    ok = merged <= FALSE_MERGE_TARGET  # verified on exact shingle sets, nothing under the threshold is merged
    print(f"    merges {FALSE_MERGE_BELOW:.1f} <= J < {THRESHOLD}  {merged:.3f} <= {FALSE_MERGE_TARGET:.2f}  {'PASS' if ok else 'FAIL'}")
    if not ok:
        missed.append(f"{language} merges under the threshold {merged:.3f} > {FALSE_MERGE_TARGET:.2f}")
    return missed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", type=int, default=300, help="planted pairs per similarity bucket")
    parser.add_argument("--languages", nargs="+", default=["en", "ja"], choices=["en", "ja"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logger.remove()  # datatrove's info logs, one per step
    logger.add(sys.stderr, level="WARNING")
    print(f"threshold {THRESHOLD}, {NUM_PERM} hashes; ours: {BANDS} bands x {ROWS} rows (recall {RECALL} at the threshold)")
    missed = []
    for language in args.languages:
        missed += evaluate(language, args.pairs, args.seed)
    print("\nall targets met" if not missed else "\ntargets missed: " + "; ".join(missed))
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
