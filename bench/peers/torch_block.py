"""Peer for bench_block: transformers' GPT2Block (SDPA attention) forward + backward, median seconds.
Run by bench/bench_block with OMP_NUM_THREADS set; prints "result <seconds>" on its last line."""
import argparse
import statistics
import sys
import time

try:
    import torch
    from transformers import GPT2Config
    from transformers.models.gpt2.modeling_gpt2 import GPT2Block
except ImportError as e:  # the peer is optional: the C benchmark prints this and goes on
    print(f"skip PyTorch/transformers not importable ({e})")
    sys.exit(0)

p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=4)
p.add_argument("--seq", type=int, default=256)
p.add_argument("--dim", type=int, default=768)
p.add_argument("--heads", type=int, default=12)
p.add_argument("--reps", type=int, default=7)
a = p.parse_args()

torch.manual_seed(0)
cfg = GPT2Config(n_embd=a.dim, n_head=a.heads, n_positions=max(1024, a.seq), resid_pdrop=0.0, embd_pdrop=0.0,
                 attn_pdrop=0.0)
cfg._attn_implementation = "sdpa"
block = GPT2Block(cfg, layer_idx=0).train()
x = torch.randn(a.batch, a.seq, a.dim, requires_grad=True)
g = torch.randn(a.batch, a.seq, a.dim)


def step():
    out = block(x)
    y = out[0] if isinstance(out, tuple) else out
    y.backward(g)
    x.grad = None
    block.zero_grad(set_to_none=True)


for _ in range(2):
    step()
times = []
for _ in range(a.reps):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
print(f"peer torch {torch.__version__}, {torch.get_num_threads()} threads")
print(f"result {statistics.median(times):.6f}")
