#!/usr/bin/env bash
# Sourced by the benchmark wrappers: builds the release executables (unless
# FLEET_IMAGES_BENCH_NO_BUILD=1) and runs fleet-images-bench from the repository root, where the
# e2e benchmark finds the demo fleet and .build/release/fleet-images.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"

build_release() {
    if [[ ${FLEET_IMAGES_BENCH_NO_BUILD:-0} != 1 ]]; then
        for product in "$@"; do
            echo "building $product (release) …" >&2
            swift build -c release --product "$product" >&2
        done
    fi
}

bench() {
    local bin
    bin=$(swift build -c release --show-bin-path)
    "$bin/fleet-images-bench" "$@"
}
