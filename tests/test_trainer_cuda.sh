#!/bin/sh
# hft-train with device: cuda, end to end: the tiny GPT-2 of tests/fixtures/recipes trained 10 steps on
# the GPU logs the CPU run's losses; a GPU run resumed at step 5 ends with the same weights, bit for bit,
# as the run never stopped; a checkpoint of either device resumes on the other; fp16 with its loss scaler
# logs the CPU run's losses, and so does Adafactor; a LoRA run's merged export runs on the CPU after
# training; samples and hft-generate decode on the GPU as on the CPU. Runs on the CUDA module that
# HFT_CUDA_MODULE names (ctest: the host emulator, and the real module under the gpu label).
# Usage: test_trainer_cuda.sh BUILD_DIR   (run from the repository root)
set -eu
bin="$1/trainer/hft-train"
work=$(mktemp -d /tmp/hft-trainer-cuda-XXXXXX)
trap 'rm -rf "$work"' EXIT
fx=tests/fixtures/recipes
run() { # device output_dir [overrides]
    dev=$1 out=$2
    shift 2
    "$bin" recipes/scratch_gpt.yaml model.config=$fx/gpt2-tiny.json tokenizer.path=bytes \
        data.train_file=$fx/train.txt output_dir="$out" max_steps=10 save_steps=5 logging_steps=1 \
        sample_tokens=0 max_length=48 per_device_train_batch_size=4 cache_dir= device="$dev" "$@"
}
losses() { grep -o '"loss": *[0-9.e+-]*' "$1/metrics.jsonl" | awk '{printf "%.4f\n", $2}'; }

# a CUDA module that cannot load is named with the reason, before anything trains
if (export HFT_CUDA_MODULE=/nonexistent/libhft_cuda.so; run cuda "$work/none") >"$work/none.log" 2>&1; then
    echo "FAIL: device cuda ran without a CUDA module"
    exit 1
fi
grep -q "device cuda: CUDA asked for, but the CUDA module could not be loaded (/nonexistent/libhft_cuda.so" \
    "$work/none.log" || { cat "$work/none.log"; exit 1; }

if ! run cuda "$work/gpu" >"$work/gpu.log" 2>&1; then
    if grep -q "no usable GPU\|could not be loaded\|driver" "$work/gpu.log"; then
        echo "skipped: $(tail -1 "$work/gpu.log")"
        exit 77
    fi
    cat "$work/gpu.log"
    exit 1
fi
grep -q "device: cuda:0" "$work/gpu.log" || { echo "FAIL: the plan does not name the GPU"; exit 1; }
run cpu "$work/cpu" >"$work/cpu.log" 2>&1 || { cat "$work/cpu.log"; exit 1; }
losses "$work/gpu" >"$work/gpu.losses"
losses "$work/cpu" >"$work/cpu.losses"
if ! cmp -s "$work/gpu.losses" "$work/cpu.losses" || [ ! -s "$work/gpu.losses" ]; then
    echo "FAIL: the GPU run's losses differ from the CPU run's (4 decimals):"
    paste "$work/gpu.losses" "$work/cpu.losses"
    exit 1
fi
echo "ok: 10 steps on the GPU log the CPU run's losses"

mkdir "$work/resumed"
cp -r "$work/gpu/checkpoint-5" "$work/resumed/"
run cuda "$work/resumed" resume_from_checkpoint=true >"$work/resumed.log" 2>&1 || { cat "$work/resumed.log"; exit 1; }
cmp "$work/resumed/model.safetensors" "$work/gpu/model.safetensors" ||
    { echo "FAIL: a GPU run resumed at step 5 ends with other weights than the run never stopped"; exit 1; }
echo "ok: a GPU run resumed at step 5 ends bit-identical"

mkdir "$work/cross"
cp -r "$work/cpu/checkpoint-5" "$work/cross/"
run cuda "$work/cross" resume_from_checkpoint=true >"$work/cross.log" 2>&1 || { cat "$work/cross.log"; exit 1; }
losses "$work/cross" | tail -5 >"$work/cross.losses"
tail -5 "$work/cpu.losses" | cmp -s - "$work/cross.losses" ||
    { echo "FAIL: a CPU checkpoint resumed on the GPU logs other losses"; exit 1; }
echo "ok: a CPU checkpoint resumes on the GPU with the CPU run's losses"

# fp16 with its loss scaler: the GPU run logs the CPU run's losses
run cuda "$work/gpu16" fp16=true >"$work/gpu16.log" 2>&1 || { cat "$work/gpu16.log"; exit 1; }
run cpu "$work/cpu16" fp16=true >"$work/cpu16.log" 2>&1 || { cat "$work/cpu16.log"; exit 1; }
losses "$work/gpu16" >"$work/gpu16.losses"
losses "$work/cpu16" | cmp -s - "$work/gpu16.losses" || { echo "FAIL: fp16 on the GPU logs other losses"; exit 1; }
echo "ok: fp16 on the GPU logs the CPU run's losses"

# after training, merging a LoRA adapter runs on the CPU: the model moves there (and samples there)
run cuda "$work/merged" lora.r=4 lora.lora_alpha=8 lora.target_modules=[c_attn] lora.export=merged \
    sample_tokens=5 >"$work/merged.log" 2>&1 || { cat "$work/merged.log"; exit 1; }
grep -q "moved the model to the CPU to merge the LoRA adapter" "$work/merged.log" &&
    grep -q "merged the LoRA adapter into the weights" "$work/merged.log" &&
    test -f "$work/merged/model.safetensors" && grep -q "^sample (" "$work/merged.log" ||
    { echo "FAIL: a GPU LoRA run's merged export and sample"; cat "$work/merged.log"; exit 1; }
echo "ok: a GPU LoRA run ends with its adapter merged, on the CPU"

# decoding on the GPU: samples at each evaluation and after training, and hft-generate --device cuda
# continues a prompt as the CPU does (greedy) and measures the same perplexity
run cuda "$work/sampled" sample_tokens=5 sample_at_eval=true data.eval_file=$fx/valid.txt eval_strategy=steps \
    eval_steps=5 >"$work/sampled.log" 2>&1 || { cat "$work/sampled.log"; exit 1; }
grep -q "^sample at step 5: " "$work/sampled.log" && grep -q "^sample (" "$work/sampled.log" ||
    { echo "FAIL: samples on the GPU"; cat "$work/sampled.log"; exit 1; }
gen="$1/trainer/hft-generate" lm="$work/lm" # a model folder with its tokenizer (the runs above use bytes)
"$bin" recipes/scratch_gpt.yaml model.config=$fx/llama-tiny.json tokenizer.path=tests/fixtures/tokenizers/sentencepiece_bpe \
    data.train_file=$fx/train.txt output_dir="$lm" max_steps=30 save_steps=1000 sample_tokens=0 max_length=64 \
    cache_dir= device=cpu >"$work/lm.log" 2>&1 || { cat "$work/lm.log"; exit 1; }
"$gen" "$lm" --prompt "The" max_new_tokens=16 >"$work/gen-cpu.txt" 2>"$work/gen-cpu.log" ||
    { cat "$work/gen-cpu.log"; exit 1; }
"$gen" "$lm" --prompt "The" max_new_tokens=16 --device cuda >"$work/gen-gpu.txt" 2>"$work/gen-gpu.log" ||
    { cat "$work/gen-gpu.log"; exit 1; }
cmp -s "$work/gen-cpu.txt" "$work/gen-gpu.txt" ||
    { echo "FAIL: hft-generate on the GPU continues otherwise"; cat "$work/gen-cpu.txt" "$work/gen-gpu.txt"; exit 1; }
"$gen" "$lm" --perplexity $fx/valid.txt | sed 's/.*perplexity \([0-9.]*\).*/\1/' >"$work/ppl-cpu.txt"
"$gen" "$lm" --perplexity $fx/valid.txt --device cuda | sed 's/.*perplexity \([0-9.]*\).*/\1/' >"$work/ppl-gpu.txt"
awk -v a="$(cat "$work/ppl-cpu.txt")" -v b="$(cat "$work/ppl-gpu.txt")" \
    'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d <= 1e-5 * a) }' ||
    { echo "FAIL: perplexity on the GPU $(cat "$work/ppl-gpu.txt"), on the CPU $(cat "$work/ppl-cpu.txt")"; exit 1; }
echo "ok: samples during and after training on the GPU; hft-generate --device cuda = the CPU (text, perplexity)"
if "$gen" "$lm" --prompt "The" --device tpu >"$work/dev.log" 2>&1 ||
    "$gen" "$lm" --prompt "The" --device cuda:7 >>"$work/dev.log" 2>&1; then
    echo "FAIL: hft-generate took a device that is not there"
    exit 1
fi
grep -q -- "--device tpu: expected cpu, cuda or cuda:N" "$work/dev.log" &&
    grep -q -- "--device cuda:7: this machine has [0-9]* GPU" "$work/dev.log" || { cat "$work/dev.log"; exit 1; }
echo "ok: hft-generate names a bad or missing --device"

# Adafactor on the GPU (its own kernel, bit-exact with the CPU's given the same lr) logs the CPU run's losses
run cuda "$work/ada-gpu" optim=adafactor >"$work/ada-gpu.log" 2>&1 || { cat "$work/ada-gpu.log"; exit 1; }
run cpu "$work/ada-cpu" optim=adafactor >"$work/ada-cpu.log" 2>&1 || { cat "$work/ada-cpu.log"; exit 1; }
losses "$work/ada-cpu" >"$work/ada-cpu.losses"
losses "$work/ada-gpu" | cmp -s - "$work/ada-cpu.losses" && test -s "$work/ada-cpu.losses" ||
    { echo "FAIL: Adafactor on the GPU logs other losses"; exit 1; }
echo "ok: Adafactor on the GPU logs the CPU run's losses"
