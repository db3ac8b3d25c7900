#!/usr/bin/env bash
# The main job on the repository's demo fleet, offline: installs what is missing, builds
# fleet-images, then runs `fleet-images build --parallel 4` on ./fleet.json and lists the result.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift build --product fleet-images
bin="$(swift build --show-bin-path)/fleet-images"
"$bin" build --parallel 4
"$bin" ls
