#!/usr/bin/env bash
# Time the install step of `make test` with pip and with uv (BENCHMARKS.md "Set-up").
# Each tool installs xtl's `e5,dev` extras into its own fresh venv that already holds torch
# (installed by pip in both, as the Makefile does), with an empty cache, and the two
# environments must end up with the same packages (`pip freeze`, uv itself left out).
# Usage: bench/setup_install.sh   (PYTHON and TORCH_SPEC as in the Makefile; several minutes,
# network or local package index as pip is configured)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for tool in pip uv; do
    venv="$work/$tool"
    "${PYTHON:-python3}" -m venv "$venv"
    "$venv/bin/pip" install --quiet --upgrade pip uv
    "$venv/bin/pip" install --quiet "${TORCH_SPEC:-torch==2.13.0}"
    start=$(date +%s.%N)
    if [ "$tool" = pip ]; then
        PIP_NO_CACHE_DIR=1 "$venv/bin/pip" install --quiet -e "$root[e5,dev]"
    else
        UV_CACHE_DIR="$work/uv-cache" "$venv/bin/uv" pip install --quiet \
            --python "$venv/bin/python" --compile-bytecode -e "$root[e5,dev]"
    fi
    end=$(date +%s.%N)
    printf '%s install -e .[e5,dev]: %.1f s\n' "$tool" "$(echo "$end - $start" | bc)"
    "$venv/bin/pip" freeze --exclude uv --exclude pip | grep -v '^-e ' | sort > "$work/$tool.txt"
done
if diff -u "$work/pip.txt" "$work/uv.txt"; then
    echo "same packages: $(wc -l < "$work/pip.txt") pinned"
else
    echo "the two environments differ (above)"; exit 1
fi
