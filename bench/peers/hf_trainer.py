"""Peer for bench_train: transformers' Trainer fine-tuning the same GPT-2 folder on the same text (paragraphs
as documents, EOS after each, packed into blocks), the same steps, batch and threads. Prints its peak RSS on a
"peer" line and "result <tokens/s>" last."""
import argparse
import os
import resource
import sys

try:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, TrainingArguments, default_data_collator
except ImportError as e:
    print(f"skip transformers not importable ({e})")
    sys.exit(0)

p = argparse.ArgumentParser()
p.add_argument("--model")
p.add_argument("--text")
p.add_argument("--steps", type=int)
p.add_argument("--batch", type=int)
p.add_argument("--seq", type=int)
a = p.parse_args()

tok = AutoTokenizer.from_pretrained(a.model)
ids = []
for name in sorted(os.listdir(a.text)):
    path = os.path.join(a.text, name)
    if os.path.islink(path) or name.startswith("."):
        continue
    for para in open(path, encoding="utf-8").read().split("\n\n"):
        if para.strip():
            ids += tok(para.strip("\n"))["input_ids"] + [tok.eos_token_id]
blocks = [ids[i:i + a.seq] for i in range(0, len(ids) - a.seq + 1, a.seq)]
data = [{"input_ids": b, "labels": b} for b in blocks]
model = AutoModelForCausalLM.from_pretrained(a.model)
args = TrainingArguments(output_dir="/tmp/hft-peer-trainer", per_device_train_batch_size=a.batch, max_steps=a.steps,
                         learning_rate=5e-5, logging_steps=1000, save_strategy="no", report_to=[], use_cpu=True,
                         dataloader_num_workers=0, disable_tqdm=True)
trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=default_data_collator)
out = trainer.train()
runtime = out.metrics["train_runtime"]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"peer transformers Trainer: {runtime / a.steps:.1f} s/step, peak RSS {rss:.0f} MiB, torch {torch.__version__}, "
      f"{torch.get_num_threads()} threads")
print(f"result {a.steps * a.batch * a.seq / runtime:.3f}")
