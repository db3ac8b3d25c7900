#!/usr/bin/env bash
# Issue 2: FleetLoader.load on 10,000 generated sites vs JSON decode + certificate parsing.
#
#   Benchmarks/manifest.sh [OPTIONS]   (options as in `fleet-images-bench --help`; see Benchmarks/README.md)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
build_release fleet-images-bench
bench manifest "$@"
