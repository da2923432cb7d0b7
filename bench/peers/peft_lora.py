"""Peer for bench_lora: transformers' Trainer fine-tuning the same GPT-2 folder on the same text as bench_lora's
hft-train runs, either fully or with a PEFT LoRA adapter (--lora R on --targets), the same steps, batch,
sequence length and threads. Prints a "peer" line and "result <seconds per step> <peak RSS MiB>" last."""
import argparse
import os
import resource
import sys
import warnings

warnings.filterwarnings("ignore")
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
p.add_argument("--lora", type=int, default=0, help="LoRA rank; 0: a full fine-tune")
p.add_argument("--targets", default="c_attn,attn.c_proj")
p.add_argument("--grad-ckpt", action="store_true")
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
    if len(ids) > a.seq * a.batch * a.steps * 2:
        break
blocks = [ids[i:i + a.seq] for i in range(0, len(ids) - a.seq + 1, a.seq)]
data = [{"input_ids": b, "labels": b} for b in blocks]
model = AutoModelForCausalLM.from_pretrained(a.model)
what = "full fine-tune"
if a.lora:
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError as e:
        print(f"skip peft not importable ({e})")
        sys.exit(0)
    model = get_peft_model(model, LoraConfig(r=a.lora, lora_alpha=2 * a.lora, target_modules=a.targets.split(","),
                                             task_type="CAUSAL_LM"))
    what = f"PEFT LoRA r={a.lora}"
args = TrainingArguments(output_dir="/tmp/hft-peer-lora", per_device_train_batch_size=a.batch, max_steps=a.steps,
                         learning_rate=1e-4, logging_steps=1000, save_strategy="no", report_to=[], use_cpu=True,
                         dataloader_num_workers=0, disable_tqdm=True, gradient_checkpointing=a.grad_ckpt)
trainer = Trainer(model=model, args=args, train_dataset=data, data_collator=default_data_collator)
out = trainer.train()
runtime = out.metrics["train_runtime"]
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"peer transformers Trainer {what}: {runtime / a.steps:.2f} s/step, peak RSS {rss:.0f} MiB, torch "
      f"{torch.__version__}, {torch.get_num_threads()} threads")
print(f"result {runtime / a.steps:.4f} {rss:.1f}")
