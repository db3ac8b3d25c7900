#!/usr/bin/env bash
# Sets up what the tests need on a fresh machine, then builds and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build --build-tests
swift test --skip-build "$@"
