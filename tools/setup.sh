#!/bin/sh
# Installs what hft needs from Debian 12's packages when it is missing (run as root). Quiet when all is there.
set -eu
pkgs="build-essential cmake pkg-config libopenblas-openmp-dev libmpich-dev mpich libhdf5-dev libcjson-dev libyaml-dev"
# tokenizers: the regex engine HF tokenizers uses, and Unicode normalisation
pkgs="$pkgs libonig-dev libutf8proc-dev"
# clang's fuzzing and sanitizer runtimes, for the fuzz targets and the sanitizer build
pkgs="$pkgs clang libclang-rt-14-dev"
# fetching the real model files some tests use
pkgs="$pkgs curl unzip ca-certificates"
# the data-parallel tests find and signal ranks (pgrep, pkill)
pkgs="$pkgs procps"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi
