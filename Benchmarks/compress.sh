#!/usr/bin/env bash
# Issue 14.1: the signing pass that also writes the block map and an xz / zstd copy, vs xz -T2
# and zstd -T2 of the same image in the same run (time and size ratios).
#
#   Benchmarks/compress.sh [--image demo|pi] [--threads N]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
build_release fleet-images-bench
bench compress "$@"
