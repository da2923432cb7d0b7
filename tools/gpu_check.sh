#!/bin/sh
# The GPU check, one command on a fresh GPU machine: builds hft with the CUDA backend (warnings as errors),
# runs every GPU test (ctest -L gpu: each CUDA op against its CPU twin, NCCL) and the GPU benchmarks, and
# prints one summary. Where the machine lacks the -dev packages (GPU images often have CUDA and no package
# registry) it builds against .deps, prepared beforehand by tools/gpu_deps.sh on a machine with apt.
#
#   tools/gpu_check.sh               # build-gpu/, log in build-gpu/gpu_check.log
set -u
cd "$(dirname "$0")/.."
build=${HFT_GPU_BUILD:-build-gpu}
jobs=$(nproc)
mkdir -p "$build"
log="$PWD/$build/gpu_check.log"
: >"$log"
say() { echo "$*" | tee -a "$log"; }
summary=""
note() { summary="$summary
  $*"; }

say "== hft GPU check, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
if command -v nvidia-smi >/dev/null; then
    gpu=$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>&1 | head -1)
else
    gpu="no nvidia-smi"
fi
say "GPU: $gpu; nvcc: $(nvcc --version 2>/dev/null | tail -1)"
note "GPU: $gpu"

cmake_args="-DHFT_WERROR=ON"
if ! pkg-config --exists libcjson yaml-0.1 2>/dev/null || [ ! -e /usr/include/x86_64-linux-gnu/openblas-openmp/cblas.h ]; then
    if [ ! -d .deps/root ] && [ -f .deps/root.tar.xz ]; then tar -C .deps -xJf .deps/root.tar.xz; fi
    if [ ! -d .deps/root ]; then
        say "FAIL: this machine lacks the -dev packages and .deps/ is not here: run tools/gpu_deps.sh where apt works and carry .deps"
        exit 1
    fi
    deps="$PWD/.deps/root"
    export PATH="$deps/usr/bin:$PATH"
    export LD_LIBRARY_PATH="$deps/usr/lib/x86_64-linux-gnu:$deps/usr/lib/x86_64-linux-gnu/openblas-openmp:${LD_LIBRARY_PATH:-}"
    cmake_args="$cmake_args -DHFT_DEPS_ROOT=$deps"
    say "dependencies: unpacked Debian packages in .deps/root"
    note "dependencies: .deps (tools/gpu_deps.sh)"
fi

start=$(date +%s)
if ! cmake -S . -B "$build" $cmake_args >>"$log" 2>&1 || ! cmake --build "$build" -j "$jobs" >>"$log" 2>&1; then
    tail -40 "$log"
    say "FAIL: build (log: $log)"
    exit 1
fi
grep -q "CUDA backend: ON" "$log" || say "warning: CMake did not enable the CUDA backend (no nvcc or CUDA toolkit found)"
note "build: ok in $(($(date +%s) - start)) s (sm_80 and sm_90, warnings as errors)"

(cd "$build" && ctest -L gpu --output-on-failure) >>"$log" 2>&1
tests=$(grep -E "tests passed|tests failed" "$log" | tail -1)
skipped=$(grep -c "(Skipped)" "$log" || true)
say "GPU tests: $tests; skipped: $skipped"
note "GPU tests: $tests; $skipped skipped"
failed=$(grep -E "[0-9]+ - .*\((Failed|Timeout|Skipped)\)" "$log" | sed 's/^[[:space:]]*/    /')
[ -n "$failed" ] && note "not passed:
$failed"

for b in bench_cuda_ops bench_gpu_train; do
    if [ -x "$build/bench/$b" ]; then
        say "-- $b"
        "$build/bench/$b" 2>&1 | tee -a "$log" | grep -E "^(  |ok|skipped|FAIL)" >"$build/$b.txt" || true
        note "$b:"
        while read -r line; do note "  $line"; done <"$build/$b.txt"
    fi
done

echo
echo "== summary$summary"
grep -qE "tests failed|\(Failed\)|\(Timeout\)" "$log" && exit 1
exit 0
