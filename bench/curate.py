"""Whole curation of one language: ours (`aurora curate`) against datatrove's stock pipeline.

Per size and language, the same generated web-like documents (the demo generator's kinds and
proportions: 2/3 clean, 1/30 each of boilerplate, keyword spam, symbol soup, number table,
repeated line, too short, mojibake, wrong language, exact and near duplicate of a recent clean
document; no malformed records: datatrove's reader drops the rest of a file at invalid UTF-8
and hands a non-string text to its filters), written as a stream into `max(4, documents /
100,000)` jsonl.gz files (with `--format warc`, warc.gz files of HTML pages around them: a menu,
the lines as an article's paragraphs, a footer; ours only, extraction included), go through:

- ours: `pipeline.curate.curate` with `recipes/demo/<lang>.yaml` (language ID, every heuristic
  group, KenLM perplexity buckets with their sampling pass, exact + MinHash dedup with all its
  passes, Megatron shards, rejects and the manifest), on the local executor.
- datatrove 0.10.1, stage 1 (one task per file): JsonlReader -> LanguageFilter (the assets' lid.176.ftz) ->
  GopherRepetitionFilter -> GopherQualityFilter -> FineWebQualityFilter (the recipe's thresholds
  for those rules, spaCy's stop words of the language) -> CCNet perplexity (datatrove's
  KenlmModel on our SentencePiece + KenLM files, every document tagged and kept, as the demo
  recipes keep all three buckets) -> JsonlWriter -> MinhashDedupSignature (stock MinhashConfig,
  14 x 8); stage 2 MinhashDedupBuckets (one task per bucket); stage 3 MinhashDedupCluster;
  stage 4 (one task per file) JsonlReader -> MinhashDedupFilter -> MegatronDocumentTokenizer
  (our tokenizer.json, EOD after each document); each stage a LocalPipelineExecutor with
  `min(workers, tasks)` workers, as ours. Word tokenizers: datatrove's own for en and fi
  (spaCy); for hi and vi its assigned ones need indic-nlp-library and pyvi, absent here, so
  spaCy's Hindi rules and datatrove's whitespace fallback; ja, SudachiPy (`make bench-setup`; without
  it, ours only).

Each system runs in a child process (its console output to a log file beside the run), ours
and datatrove alternating which goes first from one language to the next. Figures: wall
seconds of the run in the child, documents/s, documents/s per worker, the peak RSS of the
largest process of the child's tree (VmHWM of the child, its executor's workers and helpers,
read from /proc every 0.25 s: one task per worker at a time, so the largest task's peak, or the
driver's where a one-task pass runs in it), CPU seconds of the tree (same samples) and kept
documents. Ours' cost per million documents in core-hours is wall x workers. With `--rounds N`,
each language and size runs N times on the same inputs (the systems' order alternating), and a
last table gives each round's ratios and their medians.

    .venv/bin/python bench/curate.py [--sizes 10000 100000 1000000] [--languages en fi hi ja vi] [--workers 2]
                                     [--systems ours datatrove] [--format jsonl|warc] [--rounds N] [--scratch DIR]
"""

import argparse
import glob
import gzip
import html
import importlib
import importlib.util
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import orjson  # noqa: E402

from core.allocator import POOL_VARIABLE, large_blocks_unmapped  # noqa: E402
from pipeline.recipe import TEXT_LANGUAGES  # noqa: E402
from tooling.demo_data import CLEAN_PER_FILE, JUNK_KINDS, JUNK_PER_KIND_PER_FILE, clean_document, junk_document  # noqa: E402
from tooling.sample import sample_sentences  # noqa: E402

ROOT = sys.path[0]
ASSETS = os.path.join(ROOT, "assets")
RECENT = 10_000  # clean documents a duplicate is drawn from: the stream holds no more
# datatrove's Japanese word tokenizer needs SudachiPy, from the bench extra (`make bench-setup`).
DATATROVE_LANGUAGES = ("en", "fi", "hi", "vi") + (("ja",) if importlib.util.find_spec("sudachipy") else ())
SYSTEMS = ("ours", "datatrove")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def documents(language: str, count: int, seed: int = 0):
    """`count` jsonl records, as a stream, in the demo generator's proportions per file."""
    rng = random.Random(f"{seed}-{language}")
    sentences = {lang: sample_sentences(lang) for lang in TEXT_LANGUAGES}
    others = [lang for lang in TEXT_LANGUAGES if lang != language]
    recent: list[str] = []
    for i in range(count):
        roll = rng.randrange(CLEAN_PER_FILE + JUNK_PER_KIND_PER_FILE * len(JUNK_KINDS))
        if roll < CLEAN_PER_FILE or not recent:
            label, text = "clean", clean_document(rng, sentences[language], language)
            recent.append(text)
            if len(recent) > RECENT:
                recent[rng.randrange(RECENT)] = recent.pop()
        else:
            label = JUNK_KINDS[(roll - CLEAN_PER_FILE) // JUNK_PER_KIND_PER_FILE]
            if label == "wrong_language":  # junk_document would read the other language's sample file each time
                other = rng.choice(others)
                text = clean_document(rng, sentences[other], other)
            else:
                text = junk_document(label, rng, language, sentences[language], others, recent)
        yield orjson.dumps({"id": f"{language}-{i:08d}", "url": f"https://example.{language}/{i}", "label": label, "text": text})


def html_page(record: bytes) -> bytes:
    """A web page around a generated document: a menu, its lines as the article's paragraphs, a footer."""
    doc = orjson.loads(record)
    paragraphs = "".join(f"<p>{html.escape(line)}</p>" for line in doc["text"].split("\n") if line.strip())
    menu = "".join(f'<li><a href="/{i}">{name}</a></li>' for i, name in enumerate(("Home", "News", "About", "Contact")))
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(doc['id'])}</title></head><body>"
            f"<header><nav><ul>{menu}</ul></nav></header><main><article>{paragraphs}</article></main>"
            f"<footer><p>© example.{doc['id'][:2]}</p></footer></body></html>").encode()


def write_inputs(language: str, count: int, folder: str, form: str = "jsonl") -> int:
    """The documents, round-robin over the input files (jsonl.gz, or warc.gz of HTML pages around
    them, each response after its request); returns the number of files."""
    os.makedirs(folder)
    n = max(4, count // 100_000)
    if form == "warc":
        from warcio.statusandheaders import StatusAndHeaders
        from warcio.warcwriter import WARCWriter

        files = [open(os.path.join(folder, f"part-{i:05d}.warc.gz"), "wb") for i in range(n)]
        writers = [WARCWriter(f, gzip=True) for f in files]
        for i, line in enumerate(documents(language, count)):
            writer, url = writers[i % n], f"https://example.{language}/{i}"
            writer.write_record(writer.create_warc_record(url, "request", payload=io.BytesIO(b"GET / HTTP/1.1\r\n\r\n"),
                                                          warc_content_type="application/http; msgtype=request"))
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            writer.write_record(writer.create_warc_record(url, "response", payload=io.BytesIO(html_page(line)), http_headers=http))
    else:
        files = [gzip.open(os.path.join(folder, f"part-{i:05d}.jsonl.gz"), "wb", compresslevel=1) for i in range(n)]
        for i, line in enumerate(documents(language, count)):
            files[i % n].write(line + b"\n")
    for f in files:
        f.close()
    return n


def run_ours(language: str, inputs: str, output: str, workers: int) -> int:
    from pipeline.curate import curate
    from pipeline.recipe import load_recipe

    recipe = load_recipe(os.path.join(ROOT, "recipes", "demo", f"{language}.yaml"))  # asset paths relative to ROOT, the cwd
    manifest = curate(recipe, inputs=[os.path.join(inputs, "part-*")], output=output, executor="local", workers=workers)
    return manifest["funnel"]["kept"]


def step_seconds(output: str) -> dict[str, float]:
    """Seconds each step of our run spent in its own work, summed over its tasks, by pass and
    step name (datatrove's `time_stats` in `logs/<pass>/stats.json`; a step that times nothing,
    the reader among them, has none)."""
    seconds: dict[str, float] = {}
    for path in sorted(glob.glob(os.path.join(output, "logs", "*", "stats.json"))):
        name = os.path.basename(os.path.dirname(path))
        with open(path, "rb") as f:
            for step in orjson.loads(f.read()):
                total = step["time_stats"]["total"] if step["time_stats"] else 0.0
                if total:
                    label = step["name"].split(": ", 1)[-1].encode("ascii", "ignore").decode().strip()
                    key = f"{name}: {label}"
                    seconds[key] = seconds.get(key, 0.0) + total
    return seconds


def floor(language: str, inputs: str, output: str) -> dict:
    """Our shard writer alone, in this process, on the documents our run kept (their text as the
    reader made it): its tokens per CPU second, the floor of the whole curation."""
    import pyarrow.parquet as pq
    from datatrove.io import get_datafolder

    from core.text import WORD_COUNT
    from pipeline.recipe import load_recipe
    from pipeline.tokenize import MegatronShardWriter
    from readers.records import readable_documents

    kept = set()
    for path in glob.glob(os.path.join(output, "signals", "0*.parquet")):
        table = pq.read_table(path, columns=["id", "removed_by"]).to_pylist()
        kept.update(row["id"] for row in table if row["removed_by"] is None)
    docs = [doc for path in sorted(glob.glob(os.path.join(inputs, "part-*"))) for doc in readable_documents(path) if doc.id in kept]
    for doc in docs:  # the floor tokenizes and writes: words are counted before it (dedup's documents carry them)
        doc.metadata.update(source="web", language=language, **{WORD_COUNT: 0})
    recipe = load_recipe(os.path.join(ROOT, "recipes", "demo", f"{language}.yaml"))
    folder = get_datafolder(os.path.join(output, "floor"))
    writer = MegatronShardWriter(folder, "floor", recipe.tokenizer, recipe.eod_token, recipe.max_shard_tokens, recipe.batch_size)
    start = time.process_time()
    writer.run(iter(docs))
    cpu = time.process_time() - start
    tokens = sum(s["tokens"] for s in orjson.loads(folder.open("tasks/00000/tokenize.json", "rb").read())["shards"])
    return {"documents": len(docs), "tokens": tokens, "cpu": cpu}


def datatrove_stages(language: str, inputs: str, output: str, files: int) -> list:
    """(name, pipeline, tasks) of datatrove's four stages; see the module docstring."""
    import kenlm
    import sentencepiece
    from datatrove.pipeline.dedup import MinhashDedupBuckets, MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.filters import FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter, LanguageFilter
    from datatrove.pipeline.filters.base_filter import BaseFilter
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.tokens.megatron_tokenizer import MegatronDocumentTokenizer
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.lid import FT176LID
    from datatrove.utils.perplexity import KenlmModel, SentencePiece
    from datatrove.utils.word_tokenizers import SpaCyTokenizer, WhitespaceTokenizer

    from filters.heuristics import HeuristicsConfig
    from filters.language_id import LanguageIDConfig
    from pipeline.recipe import load_recipe

    class LocalLID(FT176LID):
        """datatrove's fastText language ID on the assets' lid.176.ftz instead of its download of lid.176.bin."""

        @property
        def model(self):
            if self._model is None:
                from fasttext.FastText import _FastText

                self._model = _FastText(os.path.join(ASSETS, "lid.176.ftz"))
            return self._model

    class LocalLanguageFilter(LanguageFilter):
        """datatrove's LanguageFilter with LocalLID. Its dependency check wants the
        fasttext-numpy2-wheel distribution and fasteners (the download's lock): here the same
        `fasttext` module comes from fasttext-community and nothing is downloaded."""

        def __new__(cls, *args, **kwargs):
            return object.__new__(cls)

        def __init__(self, language: str, threshold: float):
            super().__init__(languages=[language], language_threshold=threshold)
            self.model = LocalLID([language])

    class LocalSentencePiece(SentencePiece):
        @property
        def model(self):
            if self._model is None:
                self._model = sentencepiece.SentencePieceProcessor(model_file=os.path.join(ASSETS, f"{self.model_name}.sp.model"))
            return self._model

    class LocalKenlmModel(KenlmModel):
        """datatrove's CCNet scorer (its normalization, SentencePiece, KenLM) on our files instead of edugp's download."""

        @property
        def model(self):
            if self._model is None:
                self._model = kenlm.Model(os.path.join(ASSETS, f"{self.language}.arpa.bin"))
            return self._model

        @property
        def tokenizer(self):
            if self._tokenizer is None:
                self._tokenizer = LocalSentencePiece(self.model_dataset, self.language)
            return self._tokenizer

    class CCNetPerplexity(BaseFilter):
        """Tags each document with its CCNet perplexity and keeps it. datatrove 0.10.1 has no
        perplexity filter; its CCNetPerplexityStats step needs tldextract, absent here."""

        name = "CCNet perplexity"

        def __init__(self, language: str):
            super().__init__()
            self.model = LocalKenlmModel("local", language)

        def filter(self, doc) -> bool:
            doc.metadata["ccnet_perplexity"] = self.model.get_perplexity(doc.text)
            return True

    recipe = load_recipe(os.path.join(ROOT, "recipes", "demo", f"{language}.yaml"))
    quality, repetition, fineweb = (recipe.filter(HeuristicsConfig).groups[g] for g in ("gopher_quality", "gopher_repetition", "fineweb"))
    words = {"hi": SpaCyTokenizer("hi"), "vi": WhitespaceTokenizer()}.get(language, language)
    stop_words = importlib.import_module(f"spacy.lang.{language}.stop_words").STOP_WORDS  # ours' lists too
    minhash = MinhashConfig()
    filtered, signatures, buckets, removed = (os.path.join(output, d) for d in ("filtered", "signatures", "buckets", "remove_ids"))
    filter_stage = [
        JsonlReader(inputs, glob_pattern="*.jsonl.gz"),
        LocalLanguageFilter(language, recipe.filter(LanguageIDConfig).min_score),
        GopherRepetitionFilter(
            dup_line_frac=repetition["max_dup_line_frac"],
            dup_para_frac=repetition["max_dup_para_frac"],
            dup_line_char_frac=repetition["max_dup_line_char_frac"],
            dup_para_char_frac=repetition["max_dup_para_char_frac"],
            top_n_grams=tuple((n, repetition[f"max_top_{n}gram_frac"]) for n in (2, 3, 4)),
            dup_n_grams=tuple((n, repetition[f"max_dup_{n}gram_frac"]) for n in range(5, 11)),
            language=words,
        ),
        GopherQualityFilter(
            **{
                rule: quality[rule]
                for rule in (
                    "min_doc_words",
                    "max_doc_words",
                    "min_avg_word_length",
                    "max_avg_word_length",
                    "max_symbol_word_ratio",
                    "max_bullet_lines_ratio",
                    "max_ellipsis_lines_ratio",
                    "min_stop_words",
                )
            },
            max_non_alpha_words_ratio=quality["min_alpha_words_ratio"],  # datatrove's name for the same rule
            stop_words=stop_words,
            language=words,
        ),
        FineWebQualityFilter(
            line_punct_thr=fineweb["min_line_punct_ratio"],
            short_line_thr=fineweb["max_short_line_ratio"],
            short_line_length=fineweb["short_line_length"],
            char_duplicates_ratio=fineweb["max_char_dup_ratio"],
            new_line_ratio=fineweb["max_new_line_ratio"],
            language=words,
        ),
        CCNetPerplexity(language),
        JsonlWriter(filtered),
        MinhashDedupSignature(signatures, config=minhash, language=words),
    ]
    tokenize_stage = [
        JsonlReader(filtered),
        MinhashDedupFilter(removed),
        MegatronDocumentTokenizer(os.path.join(output, "tokens"), tokenizer_name_or_path=recipe.tokenizer, eos_token=recipe.eod_token),
    ]
    return [
        ("filter", filter_stage, files),
        ("buckets", [MinhashDedupBuckets(signatures, buckets, config=minhash)], minhash.num_buckets),
        ("clusters", [MinhashDedupCluster(buckets, removed, config=minhash)], 1),
        ("tokenize", tokenize_stage, files),
    ]


def run_datatrove(language: str, inputs: str, output: str, workers: int) -> int:
    from datatrove.executor import LocalPipelineExecutor

    files = len(glob.glob(os.path.join(inputs, "*.jsonl.gz")))
    for name, pipeline, tasks in datatrove_stages(language, inputs, output, files):
        LocalPipelineExecutor(pipeline, tasks=tasks, workers=min(workers, tasks), logging_dir=os.path.join(output, "logs", name)).run()
    kept = 0
    for index in glob.glob(os.path.join(output, "tokens", "*.idx")):
        with open(index, "rb") as f:  # MMIDIDX header (9 bytes), version (8), dtype (1), then the sequence count
            f.seek(18)
            kept += int.from_bytes(f.read(8), "little")
    return kept


def _process_tree(root: int) -> list[tuple[int, str]]:
    """(pid, start time) of `root` and every process under it."""
    children: dict[int, list[int]] = {}
    starts = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:  # it ended meanwhile
                continue
            pid = int(entry.name)
            starts[pid] = fields[19]
            children.setdefault(int(fields[1]), []).append(pid)
    tree, stack = [], [root]
    while stack:
        pid = stack.pop()
        if pid in starts:
            tree.append((pid, starts[pid]))
        stack += children.get(pid, [])
    return tree


def sample_tree(process: subprocess.Popen, interval: float = 0.25) -> tuple[float, float]:
    """Samples the process tree until `process` ends: the largest VmHWM (MiB) of any process in
    it and the CPU seconds of them all (each process's last reading)."""
    peak, cpu = {}, {}
    while process.poll() is None:
        for pid, start in _process_tree(process.pid):
            try:
                with open(f"/proc/{pid}/status") as f:
                    hwm = next((int(line.split()[1]) for line in f if line.startswith("VmHWM:")), 0)
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            key = (pid, start)
            peak[key] = max(peak.get(key, 0), hwm)
            cpu[key] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        time.sleep(interval)
    return max(peak.values(), default=0) / 1024, sum(cpu.values())


def _child(system: str, language: str, inputs: str, output: str, workers: int, log_path: str) -> tuple[bytes, float, float]:
    """Run `system` in a child process: what it printed, its tree's peak RSS (MiB) and CPU seconds.
    Ours (and its floor) with Arrow's buffers from the C library's allocator, as the `aurora`
    command sets it before Arrow loads (`core.allocator`; the child loads Arrow when it imports this
    module). datatrove keeps its default."""
    env = dict(os.environ)
    if system != "datatrove":
        env.setdefault(POOL_VARIABLE, "system")
    with open(log_path, "w") as log:
        command = [sys.executable, os.path.abspath(__file__), "--run", system, language, inputs, output, str(workers)]
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True, env=env)
        peak, cpu = sample_tree(process)
        out = process.stdout.read()
    if process.returncode != 0:
        with open(log_path, encoding="utf-8", errors="replace") as f:
            raise SystemExit(f"{system} on {language} failed (exit {process.returncode}):\n{f.read()[-3000:]}")
    return out, peak, cpu


def measure(system: str, language: str, count: int, inputs: str, folder: str, workers: int) -> dict:
    """One run of `system` on the `count` documents in `inputs`, in a child process; its figures.
    After ours, the floor: our shard writer alone on the documents it kept, in another child."""
    output = os.path.join(folder, system)
    shutil.rmtree(output, ignore_errors=True)  # an earlier round's: a run resumes, skipping the tasks done
    out, peak, cpu = _child(system, language, inputs, output, workers, os.path.join(folder, f"{system}.log"))
    seconds, kept, extra = orjson.loads(out)
    result = {"seconds": seconds, "per_core": count / seconds / workers, "kept": kept, "peak": peak, "cpu": cpu, **extra}
    if system == "ours":
        with open(os.path.join(output, "manifest.json"), "rb") as f:
            result["tokens"] = orjson.loads(f.read())["totals"]["tokens"]
        result["floor"] = orjson.loads(_child("floor", language, inputs, output, workers, os.path.join(folder, "floor.log"))[0])
    return result


def child(system: str, language: str, inputs: str, output: str, workers: str) -> None:
    if system != "datatrove":  # as the `aurora` command's own process (`_child` sets Arrow's pool)
        large_blocks_unmapped()
    if system == "floor":  # after ours, on its output
        print(orjson.dumps(floor(language, inputs, output)).decode(), flush=True)
        os._exit(0)
    start = time.perf_counter()
    kept = (run_ours if system == "ours" else run_datatrove)(language, inputs, output, int(workers))
    seconds = time.perf_counter() - start
    extra = {"steps": step_seconds(output)} if system == "ours" else {}
    print(orjson.dumps([seconds, kept, extra]).decode(), flush=True)
    # As `aurora` does: pyarrow's threads may abort the interpreter's teardown (exit 134) after the work is done.
    os._exit(0)


def _cell(result: dict | None, key: str, form: str) -> str:
    return "n/a" if result is None else format(result[key], form)


def print_table(rows: list[dict], workers: int) -> None:
    print(f"\n{workers} workers; docs/s/core = documents / wall seconds / workers; CPU s of the process tree; peak RSS of its largest process, MiB\n")
    print(
        "| language | documents | ours s | datatrove s | ours CPU s | datatrove CPU s | ours docs/s/core | datatrove docs/s/core "
        "| ours / datatrove | ours peak RSS | datatrove peak RSS | ours kept | datatrove kept | ours core-h per M docs |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        n, ours, theirs = row["documents"], row.get("ours"), row.get("datatrove")
        cells = [
            row["language"],
            f"{n:,}",
            _cell(ours, "seconds", ".1f"),
            _cell(theirs, "seconds", ".1f"),
            _cell(ours, "cpu", ".1f"),
            _cell(theirs, "cpu", ".1f"),
            _cell(ours, "per_core", ",.0f"),
            _cell(theirs, "per_core", ",.0f"),
            f"{ours['per_core'] / theirs['per_core']:.2f}" if ours and theirs else "n/a",
            _cell(ours, "peak", ",.0f"),
            _cell(theirs, "peak", ",.0f"),
            _cell(ours, "kept", ","),
            _cell(theirs, "kept", ","),
            f"{ours['seconds'] * workers / n * 1e6 / 3600:.3f}" if ours else "n/a",
        ]
        print("| " + " | ".join(cells) + " |")


def print_floor_and_steps(rows: list[dict], workers: int) -> None:
    """Per run of ours: its tokens per second per core against the floor's (the shard writer alone
    on its kept documents, tokens per CPU second), and where its CPU went, step by step."""
    print("\n| language | documents | kept tokens | ours tokens/s/core | floor tokens/s/core | ours / floor "
          "| its tokenize step tokens/s | ours / its tokenize step |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        ours = row.get("ours")
        if ours:
            per_core, floor_rate, ratio = floor_rates(ours, workers)
            step_rate = tokenize_step_rate(ours)
            print(f"| {row['language']} | {row['documents']:,} | {ours['tokens']:,} | {per_core:,.0f} | {floor_rate:,.0f} "
                  f"| {ratio:.3f} | {step_rate:,.0f} | {per_core / step_rate:.3f} |")
    for row in rows:
        ours = row.get("ours")
        if not ours:
            continue
        print(f"\nours, {row['language']}, {row['documents']:,} documents: share of the process tree's {ours['cpu']:.1f} CPU seconds\n")
        print("| pass: step | CPU s | share |")
        print("| --- | ---: | ---: |")
        for step, seconds in sorted(ours["steps"].items(), key=lambda item: -item[1]):
            print(f"| {step} | {seconds:.2f} | {seconds / ours['cpu']:.1%} |")
        rest = ours["cpu"] - sum(ours["steps"].values())
        print(f"| the rest: passing documents between steps, signals and rejects, writers, start-up | {rest:.2f} | {rest / ours['cpu']:.1%} |")


def print_rounds(rows: list[dict], workers: int) -> None:
    """Per language and size: ours / datatrove per core and ours / floor in each round, and their medians."""
    print("\n| language | documents | ours / datatrove per core, each round | median | ours / floor, each round | median |")
    print("| --- | ---: | --- | ---: | --- | ---: |")
    runs: dict[tuple, list[dict]] = {}
    for row in rows:
        runs.setdefault((row["language"], row["documents"]), []).append(row)
    for (language, documents), same in runs.items():
        cells = []
        for values in ([r["ours"]["per_core"] / r["datatrove"]["per_core"] for r in same if r.get("ours") and r.get("datatrove")],
                       [floor_rates(r["ours"], workers)[2] for r in same if r.get("ours")]):
            cells += [", ".join(f"{v:.2f}" for v in values) or "n/a", f"{statistics.median(values):.2f}" if values else "n/a"]
        print(f"| {language} | {documents:,} | {' | '.join(cells)} |")


def tokenize_step_rate(ours: dict) -> float:
    """Tokens per CPU second of ours' own tokenize step (its tasks' time in the shard writer): the
    floor measured inside the run, so that the machine's speed, which moves between the run and the
    floor's child, moves both alike."""
    return ours["tokens"] / sum(seconds for step, seconds in ours["steps"].items() if step.endswith(": Megatron shards"))


def floor_rates(ours: dict, workers: int) -> tuple[float, float, float]:
    """Ours' kept tokens per second per core, the floor's (the shard writer alone, tokens per CPU
    second), and their ratio."""
    per_core, floor_rate = ours["tokens"] / ours["seconds"] / workers, ours["floor"]["tokens"] / ours["floor"]["cpu"]
    return per_core, floor_rate, per_core / floor_rate


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--run":
        return child(*sys.argv[2:7])
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--languages", nargs="+", choices=TEXT_LANGUAGES, default=list(TEXT_LANGUAGES))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--format", choices=("jsonl", "warc"), default="jsonl",
                        help="input files: jsonl.gz records, or warc.gz of HTML pages around them (extracted by ours; datatrove is not run)")
    parser.add_argument("--scratch", default=None, help="folder for the runs' files (default: a temporary folder)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="runs of each system per language and size, on the same inputs (one run varies by up to a third at 10,000 documents)")
    args = parser.parse_args()
    if args.scratch:
        os.makedirs(args.scratch, exist_ok=True)
    rows, turn = [], 0
    for count in args.sizes:
        for language in args.languages:
            systems = [s for s in args.systems if s == "ours" or (language in DATATROVE_LANGUAGES and args.format == "jsonl")]
            if len(systems) == 2:  # alternate which goes first
                systems, turn = systems[turn:] + systems[:turn], 1 - turn
            with tempfile.TemporaryDirectory(dir=args.scratch) as folder:
                inputs = os.path.join(folder, "inputs")
                start = time.perf_counter()
                files = write_inputs(language, count, inputs, args.format)
                print(f"{language} {count:,} documents: {files} files written in {time.perf_counter() - start:.1f} s", flush=True)
                for round_ in range(args.rounds):  # each round on the same inputs, the systems' order alternating
                    row = {"language": language, "documents": count}
                    for system in systems:
                        row[system] = r = measure(system, language, count, inputs, folder, args.workers)
                        print(
                            f"  {system:<9} {r['seconds']:>8.1f} s  {count / r['seconds']:>8,.0f} docs/s  CPU {r['cpu']:>8.1f} s  "
                            f"peak {r['peak']:>6,.0f} MiB  kept {r['kept']:,}",
                            flush=True,
                        )
                    rows.append(row)
                    if len(systems) == 2 and round_ + 1 < args.rounds:
                        systems = systems[::-1]
    print_table(rows, args.workers)
    print_floor_and_steps(rows, args.workers)
    if args.rounds > 1:
        print_rounds(rows, args.workers)


if __name__ == "__main__":
    main()
