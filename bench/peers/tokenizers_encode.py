"""Peer for the tokenizer benchmark: Hugging Face `tokenizers` encoding a text file, in MB/s (10^6 bytes of UTF-8
input per second), on the given number of threads (1: RAYON_NUM_THREADS=1 and TOKENIZERS_PARALLELISM=false, so
encode_batch runs sequentially). Run by the C benchmark through bench_run_peer; prints "result <MB/s>" on its last
line, or "skip ..." and exits 0 when `tokenizers` is not importable.

    python bench/peers/tokenizers_encode.py --tokenizer tests/fixtures/tokenizers/gpt2_bpe --text prose.txt --threads 1

--tokenizer: a tokenizer.json, or a folder holding one, or an old layout (vocab.json + merges.txt: GPT-2's
byte-level BPE; vocab.txt: BERT WordPiece, lowercased unless tokenizer_config.json says do_lower_case false).
--mode batch (default): encode_batch over the text's non-empty lines (one paragraph or document per line, as a
text dataset is tokenized); lines: encode() line by line; whole: encode() of the whole text at once.
The text for the benchmark: tests/fixtures/make_tokenizer_fixtures.py --bench-text FILE writes 3 MB of English prose
(the corpus's English paragraphs, repeated; tests/fixtures/tokenizers/index.json's "english_prose_bytes" gives
their byte range in corpus.txt, so the C benchmark can build the same text without Python).
HF computes offsets for every token whatever the caller needs; their cost is in the figure.
"""
import argparse
import json
import os
import statistics
import sys
import time

p = argparse.ArgumentParser()
p.add_argument("--tokenizer", required=True)
p.add_argument("--text", required=True)
p.add_argument("--threads", type=int, default=1)
p.add_argument("--mode", choices=("batch", "lines", "whole"), default="batch")
p.add_argument("--no-special-tokens", action="store_true", help="add_special_tokens=False")
p.add_argument("--reps", type=int, default=5)
a = p.parse_args()

# Before tokenizers is imported: rayon sizes its pool from this when first used.
os.environ["RAYON_NUM_THREADS"] = str(a.threads)
os.environ["RAYON_RS_NUM_CPUS"] = str(a.threads)
os.environ["TOKENIZERS_PARALLELISM"] = "true" if a.threads > 1 else "false"

try:
    import tokenizers
    from tokenizers import Tokenizer
except ImportError as e:  # the peer is optional: the C benchmark prints this and goes on
    print(f"skip HF tokenizers not importable ({e})")
    sys.exit(0)


def load(path):
    if os.path.isdir(path):
        if os.path.exists(os.path.join(path, "tokenizer.json")):
            return Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
        if os.path.exists(os.path.join(path, "vocab.json")) and os.path.exists(os.path.join(path, "merges.txt")):
            from tokenizers.implementations import ByteLevelBPETokenizer

            return ByteLevelBPETokenizer(os.path.join(path, "vocab.json"), os.path.join(path, "merges.txt"))._tokenizer
        if os.path.exists(os.path.join(path, "vocab.txt")):
            from tokenizers.implementations import BertWordPieceTokenizer

            lower = True
            cfg = os.path.join(path, "tokenizer_config.json")
            if os.path.exists(cfg):
                lower = json.load(open(cfg, encoding="utf-8")).get("do_lower_case", True)
            return BertWordPieceTokenizer(os.path.join(path, "vocab.txt"), lowercase=lower)._tokenizer
        sys.exit(f"{path}: no tokenizer.json, vocab.json + merges.txt or vocab.txt")
    return Tokenizer.from_file(path)


try:
    tok = load(a.tokenizer)
    with open(a.text, encoding="utf-8") as f:
        text = f.read()
except (OSError, ValueError, Exception) as e:  # noqa: B014  a bad file is reported, not a traceback
    print(f"skip could not load {a.tokenizer} or {a.text}: {e}")
    sys.exit(0)
tok.no_truncation()
tok.no_padding()
nbytes = len(text.encode("utf-8"))
lines = [l for l in text.split("\n") if l]
special = not a.no_special_tokens


def run():
    if a.mode == "batch":
        return sum(len(e.ids) for e in tok.encode_batch(lines, add_special_tokens=special))
    if a.mode == "lines":
        return sum(len(tok.encode(l, add_special_tokens=special).ids) for l in lines)
    return len(tok.encode(text, add_special_tokens=special).ids)


ntok = run()  # warm-up
times = []
for _ in range(a.reps):
    t0 = time.perf_counter()
    run()
    times.append(time.perf_counter() - t0)
t = statistics.median(times)
print(f"peer tokenizers {tokenizers.__version__}, {a.threads} thread(s), mode {a.mode}, {nbytes / 1e6:.2f} MB, "
      f"{ntok} tokens, {t:.3f} s")
print(f"result {nbytes / 1e6 / t:.3f}")
