"""Peer for bench_adamw: one torch.optim.AdamW step (foreach=True or fused=True) over GPT-2 small's parameter
shapes, f32, weight decay on all but biases and norm weights as the HF Trainer groups them; median seconds.
Run by bench/bench_adamw with OMP_NUM_THREADS set; prints "result <seconds>" on its last line."""
import argparse
import statistics
import sys
import time

try:
    import torch
except ImportError as e:  # the peer is optional: the C benchmark prints this and goes on
    print(f"skip PyTorch not importable ({e})")
    sys.exit(0)

p = argparse.ArgumentParser()
p.add_argument("--mode", choices=["fused", "foreach"], default="fused")
p.add_argument("--layers", type=int, default=12)
p.add_argument("--dim", type=int, default=768)
p.add_argument("--vocab", type=int, default=50257)
p.add_argument("--ctx", type=int, default=1024)
p.add_argument("--reps", type=int, default=9)
a = p.parse_args()

D = a.dim
decay_shapes = [(a.vocab, D), (a.ctx, D)]
no_decay_shapes = []
for _ in range(a.layers):
    decay_shapes += [(D, 3 * D), (D, D), (D, 4 * D), (4 * D, D)]
    no_decay_shapes += [(D,), (D,), (3 * D,), (D,), (D,), (D,), (4 * D,), (D,)]
no_decay_shapes += [(D,), (D,)]

g = torch.Generator().manual_seed(0)
decay = [torch.empty(s).uniform_(-0.02, 0.02, generator=g) for s in decay_shapes]
no_decay = [torch.empty(s).uniform_(-0.02, 0.02, generator=g) for s in no_decay_shapes]
for t in decay + no_decay:
    t.requires_grad_(True)
    t.grad = torch.empty_like(t).uniform_(-0.02, 0.02, generator=g)
groups = [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}]
kw = {"fused": True} if a.mode == "fused" else {"foreach": True}
opt = torch.optim.AdamW(groups, lr=6e-4, **kw)

for _ in range(2):  # the first step allocates the state
    opt.step()
times = []
for _ in range(a.reps):
    t0 = time.perf_counter()
    opt.step()
    times.append(time.perf_counter() - t0)
n = sum(t.numel() for t in decay + no_decay)
print(f"peer torch {torch.__version__} AdamW {a.mode}, {n / 1e6:.1f}M parameters, {torch.get_num_threads()} threads")
print(f"result {statistics.median(times):.6f}")
