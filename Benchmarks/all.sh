#!/usr/bin/env bash
# Every benchmark once, in release, then the signing throughput; prints each one's numbers and ratios.
#
#   Benchmarks/all.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
build_release fleet-images-bench fleet-images
status=0
for name in manifest scheduler noop merge inject e2e compress; do
    bench "$name" || status=1
    echo
done
FLEET_IMAGES_BENCH_NO_BUILD=1 Benchmarks/shard.sh || status=1
echo
Benchmarks/sign-throughput.sh "$(swift build -c release --show-bin-path)/fleet-images" || status=1
exit $status
