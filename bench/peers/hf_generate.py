"""Peer for bench_generate: transformers' generate, greedy, on GPT2LMHeadModel(GPT2Config()) (random weights),
one stream and a batch; prints tokens per second of each."""
import argparse
import sys
import time

try:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
except ImportError as e:
    print(f"skip PyTorch/transformers not importable ({e})")
    sys.exit(0)

p = argparse.ArgumentParser()
p.add_argument("--prompt", type=int, default=16)
p.add_argument("--new", type=int, default=64)
p.add_argument("--batch", type=int, default=8)
a = p.parse_args()
torch.manual_seed(0)
model = GPT2LMHeadModel(GPT2Config()).eval()


def run(rows):
    ids = (torch.arange(rows * a.prompt) * 7919 + 11) % 50257
    ids = ids.view(rows, a.prompt)
    with torch.no_grad():
        t0 = time.perf_counter()
        model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=a.new, min_new_tokens=a.new,
                       do_sample=False, pad_token_id=0)
        return rows * a.new / (time.perf_counter() - t0)


run(1)
tps1, tps8 = run(1), run(a.batch)
print(f"peer torch {torch.__version__} generate, {torch.get_num_threads()} threads")
print(f"result {tps1:.3f} {tps8:.3f}")
