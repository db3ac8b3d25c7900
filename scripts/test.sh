#!/usr/bin/env bash
# Sets up what the tests need on a fresh machine, then builds and runs the whole test suite.
# The packer-docker tests need a Docker engine: this installs Debian's docker.io and starts
# dockerd when none answers (it needs root or sudo for that). Without one they are skipped
# with a message, except under CI=true, where a missing engine is an error.
# The boot tests (DeviceBootTests) run by default; FLEET_IMAGES_BOOT_TESTS=0 leaves them out (a
# quick local run). They need the arm64 test bases of scripts/testbed (built once from Debian's
# packages, then cached: about half an hour cold, seconds warm) and qemu; this installs the tools,
# registers qemu's arm64 handler with binfmt_misc (root) and builds the bases in the background
# while Swift builds and every other test runs, then runs the boot tests. When that is impossible
# the boot tests are skipped with a message, except under CI=true, where that is an error.
set -euo pipefail
cd "$(dirname "$0")/.."
boot_tests=${FLEET_IMAGES_BOOT_TESTS:-1}
base_pids=()
unset FLEET_IMAGES_BOOT_TESTS
FLEET_IMAGES_WITH_DOCKER=1 FLEET_IMAGES_WITH_TESTBED=$boot_tests scripts/install-deps.sh

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

# Boot tests: arm64 test bases (cached by their inputs) and a qemu that boots them.
boot_tests_unavailable() {
  if [ "${CI:-}" = true ]; then
    echo "error: $1; the boot tests need it" >&2
    exit 1
  fi
  echo "warning: $1; the boot tests will be skipped" >&2
}
if [ "$boot_tests" != 1 ]; then
  echo "note: the boot tests are off (FLEET_IMAGES_BOOT_TESTS=$boot_tests; 1 or unset runs them)" >&2
elif [ "$(id -u)" -ne 0 ]; then
  boot_tests_unavailable "not root: the test bases keep real file owners, and qemu's arm64 handler must be registered"
else
  if ! [ -e /proc/sys/fs/binfmt_misc/status ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc || true
  fi
  [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
  if ! [ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
    boot_tests_unavailable "no binfmt_misc handler for arm64 programs (qemu-user-static)"
  else
    # Both at once and in the background: each is one emulated dpkg run after another (tens of
    # minutes cold, seconds cached), so they build while Swift builds and the other tests run.
    bases_started=$(date +%s)
    base_pids=()
    for suite in bookworm trixie; do
      scripts/testbed/make-test-base.sh "$suite" >"/tmp/fleet-images-testbed-$suite.path" 2>"/tmp/fleet-images-testbed-$suite.log" &
      base_pids+=("$!")
    done
  fi
fi

# Waits for the test bases; says whether both are there.
wait_for_bases() {
  local index suite ready=1
  for index in 0 1; do
    suite=$([ "$index" = 0 ] && echo bookworm || echo trixie)
    if wait "${base_pids[$index]}"; then
      echo "test base $suite: $(cat "/tmp/fleet-images-testbed-$suite.path") (ready after $(( $(date +%s) - bases_started )) s)" >&2
    else
      cat "/tmp/fleet-images-testbed-$suite.log" >&2
      ready=0
      boot_tests_unavailable "the $suite test base could not be built"
    fi
  done
  [ "$ready" = 1 ]
}

swift build --build-tests
if [ "${#base_pids[@]}" -eq 0 ]; then
  swift test --skip-build "$@"
elif [ $# -gt 0 ]; then
  # A chosen set of tests: with the bases in place, boot tests among them run.
  if wait_for_bases; then export FLEET_IMAGES_BOOT_TESTS=1; fi
  swift test --skip-build "$@"
else
  # Everything else first, while the bases build; then the boot tests.
  # The real-flow packer tests use the bookworm base too, so they run with the boot tests.
  swift test --skip-build --skip 'DeviceBoot|PackerRealFlow'
  if wait_for_bases; then
    FLEET_IMAGES_BOOT_TESTS=1 swift test --skip-build --filter 'DeviceBoot|PackerRealFlow'
  fi
fi
