#!/usr/bin/env bash
# Issue 13: 3 shard states × 1,000 builds merged into one database vs the bare row copy (also times the release CLI).
#
#   Benchmarks/merge.sh [OPTIONS]   (options as in `fleet-images-bench --help`; see Benchmarks/README.md)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
build_release fleet-images-bench fleet-images
bench merge "$@"
