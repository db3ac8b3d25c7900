#!/usr/bin/env bash
# Sets up what the tests need on a fresh machine, then builds and runs the whole test suite.
# The packer-docker tests need a Docker engine: this installs Debian's docker.io and starts
# dockerd when none answers (it needs root or sudo for that). Without one they are skipped
# with a message, except under CI=true, where a missing engine is an error.
set -euo pipefail
cd "$(dirname "$0")/.."
FLEET_IMAGES_WITH_DOCKER=1 scripts/install-deps.sh

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
# A dockerd that is still shutting down (or stuck) does not answer: wait for it to go, then start one.
for attempt in 1 2 3; do
  docker info >/dev/null 2>&1 && break
  if ! pgrep -x dockerd >/dev/null; then
    echo "starting dockerd (log: /tmp/fleet-images-dockerd.log)" >&2
    $sudo sh -c 'nohup dockerd >/tmp/fleet-images-dockerd.log 2>&1 &'
  fi
  for _ in $(seq 1 40); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
done
if docker info >/dev/null 2>&1; then
  export FLEET_IMAGES_DOCKER_TESTS=1
elif [ "${CI:-}" = true ]; then
  echo "error: no Docker engine answers (see /tmp/fleet-images-dockerd.log); the packer-docker tests need one" >&2
  exit 1
else
  echo "warning: no Docker engine answers; the packer-docker tests will be skipped" >&2
fi

swift build --build-tests
swift test --skip-build "$@"
