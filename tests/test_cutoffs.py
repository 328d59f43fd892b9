"""The sampling passes: each sample is the first documents of the round-robin stream that pass the
filters before its step, and the passes of one run share their work without changing a sample."""

import hashlib
import itertools
from collections import Counter

import orjson

from pipeline.cutoffs import Sampler
from readers.records import DEFAULT_EXTRACTOR, MAX_DOCUMENT_BYTES


class Judge:
    """A filter that removes a document when the hash of its text is divisible by `modulus`; it
    logs each judgement and, when `needs` is set, insists that an earlier filter left its mark."""

    def __init__(self, name: str, modulus: int, batch_size: int, log: list, needs: str | None = None):
        self.name, self.modulus, self.batch_size, self.log, self.needs = name, modulus, batch_size, log, needs

    def keeps(self, text: str) -> bool:
        return int(hashlib.sha256(f"{self.name}{text}".encode()).hexdigest(), 16) % self.modulus != 0

    def filter(self, doc):
        self.log.append((self.name, doc.id))
        assert self.needs is None or doc.metadata.get(self.needs), f"{self.name} judged {doc.id} before {self.needs}"
        doc.metadata[self.name] = True
        return True if self.keeps(doc.text) else (False, self.name)

    def filter_batch(self, batch):
        return [self.filter(doc) for doc in batch]


def test_samples_are_the_first_documents_passing_and_each_filter_judges_a_document_once(tmp_path):
    inputs = []
    for f, size in enumerate((150, 40, 95)):  # files of different lengths: the round-robin goes on past the short one
        path = tmp_path / f"part-{f}.jsonl"
        path.write_bytes(b"".join(orjson.dumps({"id": f"{f}-{i}", "text": f"document {i} of file {f}"}) + b"\n" for i in range(size)))
        inputs.append(("web", str(path)))
    log: list = []
    filters = [Judge("language", 5, 256, log), Judge("quality", 7, 1, log, needs="language"),
               Judge("repetition", 3, 1, log, needs="quality"), Judge("perplexity", 4, 256, log, needs="repetition"),
               Judge("classifier", 6, 256, log, needs="perplexity")]
    files = [[f"{f}-{i}" for i in range(size)] for f, size in enumerate((150, 40, 95))]
    stream = [d for d in itertools.chain.from_iterable(itertools.zip_longest(*files)) if d is not None]
    texts = {f"{f}-{i}": f"document {i} of file {f}" for f in range(3) for i in range(150)}

    def expected(upto: int, count: int) -> list[str]:
        return [d for d in stream if all(j.keeps(texts[d]) for j in filters[:upto])][:count]

    sampler = Sampler(inputs, filters, MAX_DOCUMENT_BYTES, DEFAULT_EXTRACTOR)
    for upto, count in ((2, 15), (3, 20), (3, 25), (4, 40), (5, 30), (5, 10_000)):
        assert [doc.id for doc in sampler.sample(upto, count)] == expected(upto, count)
    assert max(Counter(log).values()) == 1
    # A run of one-at-a-time filters takes each document through all of them before the next.
    log.clear()
    Sampler(inputs, filters, MAX_DOCUMENT_BYTES, DEFAULT_EXTRACTOR).sample(5, 50)
    one_at_a_time = [entry for entry in log if entry[0] in ("quality", "repetition")]
    for (first, doc), after in zip(one_at_a_time, one_at_a_time[1:]):
        assert first != "quality" or not filters[1].keeps(texts[doc]) or after == ("repetition", doc)
