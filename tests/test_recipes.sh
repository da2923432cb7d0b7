#!/bin/sh
# Runs every recipe in recipes/ for a few steps on tiny models, as CI does: a tiny "pretrained" folder per
# family is made first by hft-train itself (from a config and a fixture tokenizer, one step, saved with the
# tokenizer files), then each recipe runs on it with key=value overrides, resumes, and exports.
# Usage: test_recipes.sh BUILD_DIR   (run from the repository root)
set -eu
bin="$1/trainer"
work=$(mktemp -d /tmp/hft-recipes-XXXXXX)
trap 'rm -rf "$work"' EXIT
fx=tests/fixtures/recipes
tk=tests/fixtures/tokenizers
quiet="logging_steps=1 save_steps=1000 cache_dir="

pretrain() { # name config tokenizer data [extra]
    name=$1 config=$2 tok=$3 data=$4
    shift 4
    echo "== a tiny $name to fine-tune"
    "$bin/hft-train" recipes/scratch_gpt.yaml model.config="$config" tokenizer.path="$tok" data.train_file="$data" \
        output_dir="$work/$name" max_steps=1 sample_tokens=0 max_length=64 $quiet "$@" > "$work/$name.log"
}

pretrain gpt2 $fx/gpt2-tiny.json $tk/gpt2_bpe $fx/train.txt
pretrain llama $fx/llama-tiny.json $tk/sentencepiece_bpe $fx/train.txt
pretrain bert $fx/bert-tiny.json $tk/wordpiece_bert $fx/classify.csv data.task=classification data.format=csv

echo "== recipes/scratch_gpt.yaml"
"$bin/hft-train" recipes/scratch_gpt.yaml output_dir="$work/scratch" max_steps=3 sample_tokens=20 max_length=64 $quiet

echo "== recipes/gpt2_finetune.yaml"
"$bin/hft-train" recipes/gpt2_finetune.yaml model.path="$work/gpt2" data.train_file=$fx/train.txt \
    data.eval_file=$fx/valid.txt output_dir="$work/gpt2-ft" max_steps=4 eval_steps=2 save_steps=2 max_length=64 \
    gradient_accumulation_steps=2 logging_steps=1 cache_dir=
echo "== resume"
"$bin/hft-train" recipes/gpt2_finetune.yaml model.path="$work/gpt2" data.train_file=$fx/train.txt \
    data.eval_file=$fx/valid.txt output_dir="$work/gpt2-ft" max_steps=6 eval_steps=2 save_steps=2 max_length=64 \
    gradient_accumulation_steps=2 logging_steps=1 cache_dir= resume_from_checkpoint=true > "$work/resume.log"
grep -q "resuming from" "$work/resume.log"
"$bin/hft-export" "$work/gpt2-ft" "$work/gpt2-export"
test -f "$work/gpt2-export/model.safetensors" -a -f "$work/gpt2-export/tokenizer.json"

echo "== recipes/llama_sft.yaml"
"$bin/hft-train" recipes/llama_sft.yaml model.path="$work/llama" data.train_file=$fx/sft.jsonl \
    output_dir="$work/llama-sft" max_steps=3 max_length=64 gradient_accumulation_steps=2 $quiet

echo "== recipes/llama_lora_sft.yaml"
lora="model.path=$work/llama data.train_file=$fx/sft.jsonl output_dir=$work/llama-lora max_length=64 $quiet save_steps=2"
"$bin/hft-train" recipes/llama_lora_sft.yaml $lora max_steps=2 > "$work/lora.log"
grep -q "LoRA: 14 modules adapted" "$work/lora.log"
test -f "$work/llama-lora/checkpoint-2/adapter_model.safetensors" -a -f "$work/llama-lora/adapter_config.json"
test ! -f "$work/llama-lora/checkpoint-2/model.safetensors"
echo "== resume the LoRA run"
"$bin/hft-train" recipes/llama_lora_sft.yaml $lora max_steps=4 resume_from_checkpoint=true > "$work/lora-resume.log"
grep -q "resuming from" "$work/lora-resume.log"
"$bin/hft-export" "$work/llama-lora/checkpoint-4" "$work/lora-adapter"
test -f "$work/lora-adapter/adapter_model.safetensors" -a -f "$work/lora-adapter/tokenizer.json"
"$bin/hft-export" "$work/llama-lora/checkpoint-4" "$work/lora-merged" --merge
test -f "$work/lora-merged/model.safetensors" -a -f "$work/lora-merged/config.json"
"$bin/hft-train" recipes/llama_lora_sft.yaml $lora output_dir="$work/llama-lora-merged" max_steps=1 lora.export=merged \
    > /dev/null
test -f "$work/llama-lora-merged/model.safetensors" -a ! -f "$work/llama-lora-merged/adapter_model.safetensors"

echo "== recipes/bert_classification.yaml"
"$bin/hft-train" recipes/bert_classification.yaml model.path="$work/bert" data.train_file=$fx/classify.csv \
    data.eval_file=$fx/classify.csv output_dir="$work/bert-cls" num_train_epochs=1 max_length=32 \
    per_device_train_batch_size=8 logging_steps=1 cache_dir= > "$work/bert.log"
grep -q "eval_accuracy" "$work/bert.log"

echo "== a LoRA on a bf16 base held in bf16 (model.dtype) trains exactly as on the same base held in f32"
"$bin/hft-export" "$work/llama" "$work/llama-bf16" --dtype bfloat16 > /dev/null
grep -q '"torch_dtype":.*"bfloat16"' "$work/llama-bf16/config.json"
f32_size=$(stat -c %s "$work/llama/model.safetensors")
bf16_size=$(stat -c %s "$work/llama-bf16/model.safetensors")
test $((bf16_size * 10)) -lt $((f32_size * 6)) # about half
bf="model.path=$work/llama-bf16 data.train_file=$fx/sft.jsonl max_length=64 $quiet save_steps=2 max_steps=2 bf16=true"
"$bin/hft-train" recipes/llama_lora_sft.yaml $bf output_dir="$work/lora-held" model.dtype=bfloat16 > "$work/held.log"
grep -q "its matrices in low precision" "$work/held.log"
"$bin/hft-train" recipes/llama_lora_sft.yaml $bf output_dir="$work/lora-f32" model.dtype=float32 > /dev/null
"$1/tests/compare_weights" "$work/lora-held/adapter_model.safetensors" "$work/lora-f32/adapter_model.safetensors" 0
echo "== merged into the bf16 base, it is written in bf16 (tests/fixtures/check_bf16_merge.py: = peft's merge)"
"$bin/hft-export" "$work/lora-held" "$work/lora-held-merged" --merge > /dev/null
grep -q '"torch_dtype":.*"bfloat16"' "$work/lora-held-merged/config.json"
echo "== model.dtype bfloat16 without a lora section is refused"
if "$bin/hft-train" recipes/llama_sft.yaml model.path="$work/llama" data.train_file=$fx/sft.jsonl output_dir="$work/x" \
    model.dtype=bfloat16 max_steps=1 > "$work/x.log" 2>&1; then exit 1; fi
grep -q "model.dtype bfloat16 holds a frozen base in low precision, for LoRA" "$work/x.log"
echo "== a full fine-tune of the bf16 model trains f32 masters and writes bf16, the dtype it came in"
"$bin/hft-train" recipes/llama_sft.yaml model.path="$work/llama-bf16" data.train_file=$fx/sft.jsonl \
    output_dir="$work/sft-bf16" max_length=64 $quiet max_steps=2 save_steps=2 > "$work/sft-bf16.log"
grep -q "writing the model in bf16, the dtype it came in" "$work/sft-bf16.log"
grep -q '"torch_dtype":.*"bfloat16"' "$work/sft-bf16/config.json"
grep -q '"torch_dtype":.*"float32"' "$work/sft-bf16/checkpoint-2/config.json" # checkpoints keep the masters
"$bin/hft-export" "$work/sft-bf16/checkpoint-2" "$work/sft-bf16-export" > /dev/null
grep -q '"torch_dtype":.*"bfloat16"' "$work/sft-bf16-export/config.json"
echo "== hft-generate on a fine-tuned model and on a LoRA adapter over its base, greedy and sampled"
"$bin/hft-generate" "$work/gpt2-export" --prompt "The quick" max_new_tokens=8 > "$work/gen.txt" 2> "$work/gen.err"
grep -q "^The quick" "$work/gen.txt" && grep -q "8 tokens in .* tokens/s (greedy" "$work/gen.err"
"$bin/hft-generate" "$work/lora-adapter" --prompt "A" max_new_tokens=4 do_sample=true seed=7 temperature=0.7 \
    > /dev/null 2> "$work/gen2.err"
grep -q "tokens/s (sampling" "$work/gen2.err"
if "$bin/hft-generate" "$work/gpt2-export" top_q=3 > /dev/null 2> "$work/gen3.err"; then exit 1; fi
grep -q "top_q=3: unknown key" "$work/gen3.err"
printf '{"prompt": "The quick"}\n{"prompt": "A", "id": 7}\n' > "$work/prompts.jsonl"
"$bin/hft-generate" "$work/gpt2-export" --file "$work/prompts.jsonl" max_new_tokens=3 > "$work/answers.jsonl"
test "$(grep -c '"completion":' "$work/answers.jsonl")" = 2 && grep -q '"id":7' "$work/answers.jsonl"
"$bin/hft-generate" "$work/gpt2-export" --perplexity $fx/valid.txt stride=16 > "$work/ppl.txt"
grep -q "perplexity [0-9.]* over [0-9]* tokens" "$work/ppl.txt"
echo "== sample_at_eval writes what the model generates at each evaluation"
"$bin/hft-train" recipes/scratch_gpt.yaml output_dir="$work/samples" max_steps=4 sample_tokens=6 max_length=64 $quiet \
    data.eval_file=$fx/valid.txt eval_strategy=steps eval_steps=2 sample_at_eval=true "sample_prompts=[The, A]" \
    > /dev/null
test "$(grep -c '"completion":' "$work/samples/samples.jsonl")" = 4 # two prompts, two evaluations
echo "== hft-generate --chat renders the prompt with the tokenizer's chat template"
cp -r "$work/gpt2-export" "$work/gpt2-chat"
cat > "$work/gpt2-chat/tokenizer_config.json" <<'EOF'
{"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>",
 "chat_template": "{% for m in messages %}{{ '<|' + m['role'] + '|>' + m['content'] + eos_token }}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"}
EOF
"$bin/hft-generate" "$work/gpt2-chat" --chat --prompt "Hello" max_new_tokens=3 > /dev/null 2> "$work/chat.err"
grep -q "3 tokens in .*prompt of [0-9]* tokens" "$work/chat.err"
if "$bin/hft-generate" "$work/gpt2-export" --chat --prompt "Hello" > /dev/null 2> "$work/chat2.err"; then exit 1; fi
grep -q "the tokenizer has no chat_template" "$work/chat2.err"
echo "== bad exports and prompt files are refused with a message"
if "$bin/hft-export" "$work/gpt2-export" "$work/x-export" --dtype int8 2> "$work/x1.err"; then exit 1; fi
grep -q -- "--dtype int8: expected float32, bfloat16 or float16" "$work/x1.err"
if "$bin/hft-export" "$work/lora-adapter" "$work/x-export" --dtype bfloat16 2> "$work/x2.err"; then exit 1; fi
grep -q -- "--dtype applies to a model's weights" "$work/x2.err"
printf '{"text": "no prompt here"}\n' > "$work/bad.jsonl"
if "$bin/hft-generate" "$work/gpt2-export" --file "$work/bad.jsonl" > /dev/null 2> "$work/x3.err"; then exit 1; fi
grep -q 'bad.jsonl:1: expected a JSON object with a string "prompt"' "$work/x3.err"
echo "all recipes ran"
