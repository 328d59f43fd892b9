"""Documents per second of the quality filter's scoring with a transformers folder model, against
bare `model(**tokenizer(batch))` on the same documents, in the same process, interleaved.

The model has FineWeb-Edu's classifier's shape (Snowflake arctic-embed-m, a BERT-base: hidden
768, 12 layers, 12 heads, at most 512 tokens, a regression head) with random weights, and a
WordPiece tokenizer of BERT's vocabulary size trained on the documents' sentences, saved as a
folder (safetensors) and read by the filter as a recipe's would be. Documents are real sentences
(`../shared/corpus/en.txt`, 5 to 20 a document: `tooling.calibrate.documents_from_sentences`).
The filter: `QualityFilter.measure` on the step's batches of 256 documents, as a curate run calls
it (a forward pass per document on the CPU, `FORWARD_DOCUMENTS` on a GPU, padded to a power of
two; float32; one thread on the CPU). Bare: batches of `FORWARD_DOCUMENTS` documents, the tokenizer
padding each batch to its longest, on the same device, dtype and threads. Runs on CUDA unchanged.

    .venv/bin/python bench/quality_transformers.py [--documents N] [--rounds 2]
"""

import argparse
import os
import sys
import tempfile
import time

sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402
from datatrove.data import Document  # noqa: E402
from datatrove.io import get_datafolder  # noqa: E402
from tokenizers import BertWordPieceTokenizer  # noqa: E402
from transformers import (  # noqa: E402
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    PreTrainedTokenizerFast,
)
from transformers.utils import logging as hf_logging  # noqa: E402

from filters.quality import FORWARD_DOCUMENTS, QualityConfig, QualityFilter  # noqa: E402
from tooling.calibrate import documents_from_sentences  # noqa: E402

CORPUS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "corpus", "en.txt")
MAX_LENGTH = 512


def build_model(folder: str, sentences: list[str]) -> None:
    tokenizer = BertWordPieceTokenizer(lowercase=True)
    tokenizer.train_from_iterator(sentences, vocab_size=30522, show_progress=False)
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer._tokenizer, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]", model_max_length=MAX_LENGTH)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                        max_position_embeddings=MAX_LENGTH, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(folder)
    fast.save_pretrained(folder)


def bare_scores(model, tokenizer, texts: list[str], device) -> list[float]:
    scores = []
    with torch.inference_mode():
        for start in range(0, len(texts), FORWARD_DOCUMENTS):
            batch = tokenizer(texts[start:start + FORWARD_DOCUMENTS], padding=True, truncation=True, return_tensors="pt").to(device)
            scores += model(**batch).logits[:, 0].float().tolist()
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, help="documents per round (default 32 on the CPU, 4096 on CUDA)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not os.path.exists(CORPUS):
        print(f"skipped: {os.path.normpath(CORPUS)} is absent (../shared/corpus)")
        return
    with open(CORPUS, encoding="utf-8") as f:
        sentences = [line.strip() for line in f if line.strip()]
    count = args.documents or (4096 if torch.cuda.is_available() else 32)
    texts = documents_from_sentences(sentences, "en", count, seed=0)
    docs = [Document(text=t, id=str(i)) for i, t in enumerate(texts)]
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    hf_logging.disable_progress_bar()
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "classifier")
        build_model(folder, sentences)
        step = QualityFilter(get_datafolder(os.path.join(tmp, "out")), "en", QualityConfig(folder, None, "min_score", min_score=3.0))
        step.measure(docs[:1])  # loads the model (and on the CPU sets one thread, which the bare runs share)
        model = AutoModelForSequenceClassification.from_pretrained(folder, dtype=torch.float32).to(device).eval()
        tokenizer = AutoTokenizer.from_pretrained(folder)
        tokens = [len(ids) for ids in tokenizer(texts, truncation=True)["input_ids"]]
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} thread"
        print(f"device: {name}; {count} documents of 5-20 sentences ({os.path.normpath(CORPUS)}), "
              f"{sum(tokens) / count:.0f} tokens on average, {sum(t == MAX_LENGTH for t in tokens)} cut at {MAX_LENGTH}")
        runs = {"filter": lambda: [values["quality.score"] for i in range(0, count, step.batch_size)
                                   for values in step.measure(docs[i:i + step.batch_size])],
                "bare": lambda: bare_scores(model, tokenizer, texts, device)}
        times, scores = {what: [] for what in runs}, {}
        for _ in range(args.rounds):
            for what, run in runs.items():
                start = time.perf_counter()
                scores[what] = run()  # a list: the device has finished
                times[what].append(time.perf_counter() - start)
        rate = {what: count / min(t) for what, t in times.items()}
        difference = max(abs(a - b) for a, b in zip(scores["filter"], scores["bare"]))
        print(f"filter {rate['filter']:.2f} documents/s, bare {rate['bare']:.2f} documents/s (best of {args.rounds} interleaved rounds): "
              f"ratio {rate['filter'] / rate['bare']:.2f}; largest score difference {difference:.2g}")

if __name__ == "__main__":
    main()
