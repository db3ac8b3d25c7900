#!/usr/bin/env bash
# Issue 7.2: the second run over 500 up-to-date variants vs FleetLoader.load (also times the release CLI).
#
#   Benchmarks/noop.sh [OPTIONS]   (options as in `fleet-images-bench --help`; see Benchmarks/README.md)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
build_release fleet-images-bench fleet-images
bench noop "$@"
