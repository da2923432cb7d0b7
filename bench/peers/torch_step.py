"""Peer for bench_step and bench_bf16: a GPT-2 124M training step (transformers' GPT2LMHeadModel, SDPA
attention, dropout 0.1, fused AdamW, clipping) in PyTorch, eager or under torch.compile (--compile), in f32 or
under CPU autocast bf16 (--bf16); median seconds on the threads OMP_NUM_THREADS gives."""
import argparse
import contextlib
import statistics
import sys
import time

try:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel
except ImportError as e:
    print(f"skip PyTorch/transformers not importable ({e})")
    sys.exit(0)

p = argparse.ArgumentParser()
p.add_argument("--batch", type=int, default=4)
p.add_argument("--seq", type=int, default=64)
p.add_argument("--reps", type=int, default=5)
p.add_argument("--bf16", action="store_true")
p.add_argument("--compile", action="store_true")
a = p.parse_args()
torch.manual_seed(0)
model = GPT2LMHeadModel(GPT2Config()).train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
ids = (torch.arange(a.batch * a.seq) * 7919 % 50257).view(a.batch, a.seq)
forward = torch.compile(model) if a.compile else model


def step():
    with torch.autocast("cpu", dtype=torch.bfloat16) if a.bf16 else contextlib.nullcontext():
        loss = forward(input_ids=ids, labels=ids).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad(set_to_none=True)


for _ in range(3 if a.compile else 2):
    step()
times = []
for _ in range(a.reps):
    t0 = time.perf_counter()
    step()
    times.append(time.perf_counter() - t0)
mode = ("autocast bf16 " if a.bf16 else "") + ("compiled" if a.compile else "eager")
print(f"peer torch {torch.__version__} {mode}, {torch.get_num_threads()} threads")
print(f"result {statistics.median(times):.6f}")
