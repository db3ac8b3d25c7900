#!/usr/bin/env bash
# Issue 7.3: the demo fleet with the release binary, --parallel 2 vs the sum of single-variant runs.
#
#   Benchmarks/e2e.sh [OPTIONS]   (options as in `fleet-images-bench --help`; see Benchmarks/README.md)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
build_release fleet-images-bench fleet-images
bench e2e "$@"
