#!/bin/sh
# The whole test suite, as CI runs it: a Release build with warnings as errors and every test, then an
# AddressSanitizer + UndefinedBehaviorSanitizer build running the unit tests.
set -eu
cd "$(dirname "$0")/.."
jobs=$(nproc)
tools/fetch_real_models.sh
cmake -S . -B build -DHFT_WERROR=ON >/dev/null
cmake --build build -j "$jobs"
(cd build && ctest --output-on-failure -j "$jobs")
cmake -S . -B build-sanitize -DHFT_WERROR=ON -DHFT_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DHFT_CUDA=OFF >/dev/null
cmake --build build-sanitize -j "$jobs"
(cd build-sanitize && ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions="$PWD/../tools/lsan.supp" \
    ctest --output-on-failure -j "$jobs" -L unit -LE no_sanitizer)
