#!/bin/sh
# Data-parallel training under `mpirun -np 2` on tiny models: 2 ranks × batch b end with the parameters of
# 1 rank × batch 2b (‖Δ‖/‖p‖ per tensor ≤ 1e-6), resume is exact at the same world size and works at
# another, ZeRO-1 trains as the plain run and its checkpoints resume at any world size, a killed or hung
# rank ends the job with an error in bounded time and leaves the last checkpoint whole, a signal to one rank
# stops every rank at the same step, and inconsistent recipes or more ranks than examples are refused with
# clear errors.
# Usage: test_dist.sh BUILD_DIR   (run from the repository root)
set -eu
bin="$1/trainer/hft-train"
export_bin="$1/trainer/hft-export"
cmp="$1/tests/compare_weights"
work=$(mktemp -d /tmp/hft-dist-XXXXXX)
current="setting up"
finish() {
    rc=$?
    if [ $rc -ne 0 ]; then
        echo "test_dist.sh: failed (status $rc) in: $current"
        for f in "$work"/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -5 "$f"; }; done
    fi
    pkill -KILL -f "$work/" 2>/dev/null || true
    rm -rf "$work"
}
trap finish EXIT
fx=tests/fixtures/recipes
tk=tests/fixtures/tokenizers
quiet="logging_steps=1 save_steps=1000 cache_dir= sample_tokens=0 max_length=64"

fail() {
    echo "FAIL: $*"
    exit 1
}

# Tiny "pretrained" models to fine-tune (one step from scratch, saved with their tokenizers).
"$bin" recipes/scratch_gpt.yaml model.config=$fx/llama-tiny.json tokenizer.path=$tk/sentencepiece_bpe \
    data.train_file=$fx/train.txt output_dir="$work/llama" max_steps=1 $quiet > /dev/null
"$bin" recipes/scratch_gpt.yaml model.config=$fx/gpt2-tiny.json tokenizer.path=$tk/gpt2_bpe \
    data.train_file=$fx/train.txt output_dir="$work/gpt2" max_steps=1 $quiet > /dev/null

cat > "$work/recipe.yaml" <<EOF
model:
  path: $work/llama
data:
  train_file: $fx/train.txt
  max_length: 64
  packing: true
training:
  max_steps: 6
  gradient_accumulation_steps: 2
  learning_rate: 1.0e-3
  warmup_steps: 0
  logging_steps: 1
  seed: 3
EOF
one() { "$bin" "$work/recipe.yaml" "$@"; }
two() { mpirun -np 2 "$bin" "$work/recipe.yaml" "$@"; }

same() { # what out1 out2 file tolerance
    echo "   $1"
    "$cmp" "$2/$4" "$3/$4" "$5" || fail "$1"
}

current="2 ranks x 2 = 1 rank x 4: Llama, AdamW, accumulation 2"
echo "== 2 ranks x 2 = 1 rank x 4: Llama, AdamW, accumulation 2"
ev="data.eval_file=$fx/valid.txt eval_strategy=steps eval_steps=3 per_device_eval_batch_size=2"
one output_dir="$work/a1" per_device_train_batch_size=4 cache_dir= $ev > "$work/a1.log"
two output_dir="$work/a2" per_device_train_batch_size=2 cache_dir= $ev > "$work/a2.log"
same "AdamW" "$work/a1" "$work/a2" model.safetensors 1e-6
evals() { sed -n 's/.*\(eval_loss [0-9.]*\).*/\1/p' "$1"; }
echo "   evaluation shared out over the ranks gives the same losses: $(evals "$work/a2.log" | tr '\n' ' ')"
test -n "$(evals "$work/a1.log")" && test "$(evals "$work/a1.log")" = "$(evals "$work/a2.log")" || fail "eval losses differ"
grep -q "global batch 8 examples = 2 per device x 2 accumulation x 2 processes" "$work/a2.log" ||
    fail "the log states the global batch"
test "$(grep -c 'train_runtime' "$work/a2.log")" = 1 || fail "only rank 0 prints" # one summary, not two

current="GPT-2 with biases, SGD (the gradients themselves), gradient checkpointing, an uneven last batch"
echo "== GPT-2 with biases, SGD (the gradients themselves), gradient checkpointing, an uneven last batch"
g="model.path=$work/gpt2 optim=sgd gradient_checkpointing=true max_steps=8 cache_dir="
one $g output_dir="$work/g1" per_device_train_batch_size=6 > /dev/null
two $g output_dir="$work/g2" per_device_train_batch_size=3 > /dev/null
same "SGD with checkpointing" "$work/g1" "$work/g2" model.safetensors 1e-6

# Data parallel on GPUs, on the CUDA emulator (whose device memory is host memory, so MPI reduces it; on GPUs
# NCCL does): the ranks' gradients live on the device, buckets start as backward writes them.
if [ -f "$1/libhft_cuda_emu.so" ]; then
    current="on the (emulated) GPU: 2 ranks x 3 = 1 rank x 6, GPT-2, SGD, checkpointing"
    echo "== $current"
    (
        export HFT_CUDA_MODULE="$1/libhft_cuda_emu.so" HFT_EMU_DEVICES=2 # a device per rank
        one $g device=cuda output_dir="$work/c1" per_device_train_batch_size=6 > "$work/c1.log"
        two $g device=cuda output_dir="$work/c2" per_device_train_batch_size=3 > "$work/c2.log"
    )
    grep -q "device: cuda:0" "$work/c2.log" || fail "the GPU run names its device"
    same "GPU ranks" "$work/c1" "$work/c2" model.safetensors 1e-6
    (   # ZeRO-1 on the device: ranges of device buffers, their state gathered through the host at step 4
        export HFT_CUDA_MODULE="$1/libhft_cuda_emu.so" HFT_EMU_DEVICES=2
        two $g device=cuda output_dir="$work/c3" per_device_train_batch_size=3 zero_stage=1 save_steps=4 \
            > "$work/c3.log"
    )
    same "GPU ranks, ZeRO-1" "$work/c1" "$work/c3" model.safetensors 1e-6
    test -f "$work/c3/checkpoint-4/training_state.h5" || fail "the ZeRO-1 GPU run saved its state"
fi

# SGD: B starts at zero, and Adam's first steps (g / |g|) turn rounding noise in a tiny B into a relative
# difference of a few 1e-6; SGD shows the gradients, and so the dropout masks, are the same.
current="LoRA with dropout (SGD): the masks are keyed on global sample indices, the same at any world size"
echo "== LoRA with dropout (SGD): the masks are keyed on global sample indices, the same at any world size"
l="optim=sgd lora.r=4 lora.lora_alpha=8 lora.lora_dropout=0.1 lora.target_modules=[q_proj,v_proj,down_proj] cache_dir="
one $l output_dir="$work/l1" per_device_train_batch_size=4 > /dev/null
two $l output_dir="$work/l2" per_device_train_batch_size=2 > /dev/null
same "LoRA adapter" "$work/l1" "$work/l2" adapter_model.safetensors 1e-6

current="resume at the same world size is exact"
echo "== resume at the same world size is exact"
two output_dir="$work/r" per_device_train_batch_size=2 save_steps=3 cache_dir= > /dev/null
mkdir "$work/r2" && cp -r "$work/r/checkpoint-3" "$work/r2/"
two output_dir="$work/r2" per_device_train_batch_size=2 save_steps=3 cache_dir= resume_from_checkpoint=true \
    > "$work/r2.log"
grep -q "resuming from .*checkpoint-3 at step 3" "$work/r2.log" || fail "resumed from checkpoint-3"
same "resumed = uninterrupted (bit-identical)" "$work/r" "$work/r2" model.safetensors 0

current="resume at another world size goes on from the same example"
echo "== resume at another world size goes on from the same example"
mkdir "$work/r1" && cp -r "$work/r/checkpoint-3" "$work/r1/"
one output_dir="$work/r1" per_device_train_batch_size=2 save_steps=3 cache_dir= resume_from_checkpoint=true \
    > "$work/r1.log"
grep -q "the checkpoint was written by 2 processes, this run has 1" "$work/r1.log" || fail "resume note"
test -f "$work/r1/model.safetensors" || fail "the 1-process resume finished"

# ZeRO-1: each rank keeps and updates its range of the optimizer state; gradients reduce to the range's
# owner and the updated values are broadcast back. The training is the plain run's; the checkpoints hold the
# same named tensors, gathered, so they resume at any world size, sharded or not.
three() { mpirun -np 3 "$bin" "$work/recipe.yaml" "$@"; }
current="ZeRO-1 trains as plain data parallelism (2 ranks; 3 ranks, whose ranges cut the buckets unevenly)"
echo "== $current"
two output_dir="$work/z2" per_device_train_batch_size=2 save_steps=3 zero_stage=1 cache_dir= > "$work/z2.log"
grep -q "ZeRO-1: the optimizer state is sharded, this rank keeps and updates" "$work/z2.log" ||
    fail "the plan names ZeRO-1"
same "ZeRO-1 2 ranks = plain 2 ranks" "$work/r" "$work/z2" model.safetensors 0
b="ddp_bucket_cap_mb=0.05 max_grad_norm=0.5" # 4 buckets cut by 3 ranges; every step clipped (norms ~1)
three output_dir="$work/p3" per_device_train_batch_size=2 $b cache_dir= > /dev/null
three output_dir="$work/z3" per_device_train_batch_size=2 zero_stage=1 $b cache_dir= > "$work/z3.log"
grep -q "in 4 buckets during backward" "$work/z3.log" || fail "4 buckets: $(grep -m1 bucket "$work/z3.log")"
same "ZeRO-1 3 ranks = plain 3 ranks" "$work/p3" "$work/z3" model.safetensors 1e-6
two $l output_dir="$work/zl" per_device_train_batch_size=2 zero_stage=1 > /dev/null
same "ZeRO-1 with LoRA = plain, 2 ranks" "$work/l2" "$work/zl" adapter_model.safetensors 0
two output_dir="$work/f2" per_device_train_batch_size=2 fp16=true cache_dir= > /dev/null
two output_dir="$work/zf" per_device_train_batch_size=2 fp16=true zero_stage=1 cache_dir= > /dev/null
same "ZeRO-1 with fp16 (the ranks' inf checks combined) = plain, 2 ranks" "$work/f2" "$work/zf" \
    model.safetensors 0

current="ZeRO-1 checkpoints: resume exact when sharded alike, and at other world sizes, sharded or not"
echo "== $current"
mkdir "$work/z2r" && cp -r "$work/z2/checkpoint-3" "$work/z2r/"
two output_dir="$work/z2r" per_device_train_batch_size=2 zero_stage=1 save_steps=3 cache_dir= \
    resume_from_checkpoint=true > /dev/null
same "ZeRO-1 resumed = uninterrupted (bit-identical)" "$work/z2" "$work/z2r" model.safetensors 0
mkdir "$work/z1" && cp -r "$work/z2/checkpoint-3" "$work/z1/"
one output_dir="$work/z1" per_device_train_batch_size=2 save_steps=3 cache_dir= resume_from_checkpoint=true \
    > /dev/null
same "a ZeRO-1 checkpoint resumed by 1 process = a plain one" "$work/r1" "$work/z1" model.safetensors 0
mkdir "$work/pz3" "$work/zz3" && cp -r "$work/r/checkpoint-3" "$work/pz3/" && cp -r "$work/z2/checkpoint-3" "$work/zz3/"
three output_dir="$work/pz3" per_device_train_batch_size=2 zero_stage=1 save_steps=3 cache_dir= \
    resume_from_checkpoint=true > /dev/null
three output_dir="$work/zz3" per_device_train_batch_size=2 zero_stage=1 save_steps=3 cache_dir= \
    resume_from_checkpoint=true > /dev/null
same "plain and ZeRO-1 checkpoints of 2 ranks resumed sharded over 3 alike" "$work/pz3" "$work/zz3" \
    model.safetensors 0
if two output_dir="$work/zx" optim=adafactor zero_stage=1 cache_dir= > "$work/zx.log" 2>&1; then
    fail "Adafactor sharded"
fi
grep -q "zero_stage 1: adafactor: cannot be sharded" "$work/zx.log" || fail "the refusal: $(grep -m1 error "$work/zx.log")"
if two output_dir="$work/zx" zero_stage=2 cache_dir= > "$work/zx.log" 2>&1; then fail "zero_stage 2 ran"; fi
grep -q "zero_stage 2: not built yet" "$work/zx.log" || fail "the refusal: $(grep -m1 error "$work/zx.log")"

# A long run for the fault tests: checkpoints every 5 steps, the two newest kept.
long="output_dir=$work/k per_device_train_batch_size=2 max_steps=100000 save_steps=5 save_total_limit=2 ddp_timeout=5 cache_dir="
rank_pid() { # the pid of rank $1 of the run in $work/k (a live hft-train, not the launcher)
    for _ in $(seq 50); do
        for p in $(pgrep -f "hft-train .*output_dir=$work/k" || true); do
            if tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx "PMI_RANK=$1"; then echo $p; return; fi
        done
        sleep 0.1
    done
    echo "no rank $1 process found" >&2
    return 1
}
wait_for() { # a file, up to 60 s
    i=0
    while [ ! -e "$1" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
    test -e "$1" || fail "$1 did not appear"
}
bounded_wait() { # pid, seconds: the job must end by then
    i=0
    while kill -0 "$1" 2>/dev/null && [ $i -lt $(($2 * 10)) ]; do sleep 0.1; i=$((i + 1)); done
    if kill -0 "$1" 2>/dev/null; then fail "the job still runs after $2 s"; fi
    wait "$1" && return 1 || return 0
}
check_last_checkpoint() {
    last="$work/k/checkpoint-$(ls "$work/k" | sed -n 's/^checkpoint-\([0-9]*\)$/\1/p' | sort -n | tail -1)"
    "$export_bin" "$last" "$work/export-$1" > /dev/null || fail "the last checkpoint $last is not whole"
    echo "   the last checkpoint ($(basename "$last")) loads and exports"
}

current="a rank killed mid-run: the job ends with an error, the last checkpoint stays whole"
echo "== a rank killed mid-run: the job ends with an error, the last checkpoint stays whole"
rm -rf "$work/k"
two $long > "$work/k.log" 2>&1 &
job=$!
wait_for "$work/k/checkpoint-10"
pid=$(rank_pid 1)
kill -KILL "$pid"
bounded_wait $job 60 || fail "mpirun exited 0 after a rank was killed"
grep -q "BAD TERMINATION\|killed\|Killed" "$work/k.log" || fail "no word of the killed rank: $(tail -3 "$work/k.log")"
check_last_checkpoint killed

current="a rank that hangs: the others stop at ddp_timeout with an error naming it"
echo "== a rank that hangs: the others stop at ddp_timeout with an error naming it"
rm -rf "$work/k"
two $long > "$work/h.log" 2>&1 &
job=$!
wait_for "$work/k/checkpoint-10"
hung=$(rank_pid 1)
kill -STOP "$hung"
bounded_wait $job 60 || fail "mpirun exited 0 after a rank hung"
kill -KILL "$hung" 2>/dev/null || true
grep -q "rank 0: .*no answer from the other ranks in 5 s (ddp_timeout)" "$work/h.log" ||
    fail "no timeout error: $(tail -3 "$work/h.log")"
check_last_checkpoint hung

current="SIGUSR1 to one rank stops both after the same step, with a checkpoint"
echo "== SIGUSR1 to one rank stops both after the same step, with a checkpoint"
rm -rf "$work/k"
two $long > "$work/s.log" 2>&1 &
job=$!
wait_for "$work/k/checkpoint-10"
pid=$(rank_pid 1)
kill -USR1 "$pid"
wait $job || fail "a graceful stop exits 0: $(tail -3 "$work/s.log")"
grep -q "stopped by signal 10 at step" "$work/s.log" || fail "the stop is reported"
step=$(sed -n 's/.*stopped by signal 10 at step \([0-9]*\).*/\1/p' "$work/s.log")
test -f "$work/k/checkpoint-$step/model.safetensors" || fail "checkpoint-$step saved at the stop"

current="inconsistent recipes across ranks are refused, naming the rank and the key"
echo "== inconsistent recipes across ranks are refused, naming the rank and the key"
if mpirun -np 1 "$bin" "$work/recipe.yaml" output_dir="$work/x" learning_rate=1e-3 : \
    -np 1 "$bin" "$work/recipe.yaml" output_dir="$work/x" learning_rate=2e-3 > "$work/x.log" 2>&1; then
    fail "different recipes ran"
fi
grep -q "rank 1's configuration differs from rank 0's: rank 0 has 'training.learning_rate: 0.001.*rank 1 has 'training.learning_rate: 0.002" \
    "$work/x.log" || fail "the error names the difference: $(grep hft-train "$work/x.log" | head -2)"

current="more ranks than examples"
echo "== more ranks than examples"
printf 'one short document\n' > "$work/one.txt"
if two output_dir="$work/y" data.train_file="$work/one.txt" data.packing=false > "$work/y.log" 2>&1; then
    fail "2 ranks ran on 1 example"
fi
grep -q "1 examples for 2 processes; every process needs at least one example" "$work/y.log" ||
    fail "the error says so: $(grep hft-train "$work/y.log" | head -2)"
echo "all data-parallel checks passed"
