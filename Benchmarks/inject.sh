#!/usr/bin/env bash
# Issue 5: inject builder vs sparse copy + SHA-256 vs xz -d on a Raspberry Pi OS-sized image (needs ~15 GB free).
#
#   Benchmarks/inject.sh [OPTIONS]   (options as in `fleet-images-bench --help`; see Benchmarks/README.md)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
build_release fleet-images-bench
bench inject "$@"
