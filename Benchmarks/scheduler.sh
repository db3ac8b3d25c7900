#!/usr/bin/env bash
# Issue 7.1: 200 sleep-0.2 s variants through BuildRunner with --parallel 4 vs the ideal 10 s.
#
#   Benchmarks/scheduler.sh [OPTIONS]   (options as in `fleet-images-bench --help`; see Benchmarks/README.md)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
build_release fleet-images-bench
bench scheduler "$@"
