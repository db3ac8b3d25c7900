#!/usr/bin/env bash
# Issue 13: the CPU cost of sharding. The demo fleet built as 3 shards, each with its own state
# folder (as 3 hosts would: each verifies and decompresses the base image itself), against one
# unsharded run of the same fleet, both with the embedded inject builder and --parallel 1.
# Prints user+system CPU seconds of every fleet-images process (children included) and the ratio.
#
# With SITES=N, a generated fleet of N sites on the demo base instead (fleet-images-bench
# make-fleet): each host's fixed cost (checking the manifest, verifying and decompressing the base
# image) is paid once per shard, so the ratio falls towards 1 as the fleet grows.
#
#   Benchmarks/shard.sh            (FLEET_IMAGES_BENCH_NO_BUILD=1 skips the release build; ROUNDS=N, default 3; SITES=N)
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
build_release fleet-images fleet-images-bench
cli=$(swift build -c release --show-bin-path)/fleet-images
work=$(mktemp -d "${TMPDIR:-/tmp}/fleet-images-bench-shard.XXXXXX")
trap 'rm -rf "$work"' EXIT
for copy in one sharded; do
    if [ -n "${SITES:-}" ]; then
        bench make-fleet --sites "$SITES" --out "$work/$copy" >/dev/null
    else
        mkdir -p "$work/$copy"
        cp -a fleet.json base certs keys variants "$work/$copy/"
        chmod 600 "$work/$copy"/keys/*.key.pem "$work/$copy"/certs/*/claim.private.pem.key
    fi
done
# user+system seconds of a command and its children, from GNU time.
cpu() {
    /usr/bin/time -f '%U %S' -o "$work/time" "$@" >"$work/out" 2>&1 || { cat "$work/out" >&2; exit 1; }
    grep -E "^run " "$work/out" | tail -n 1 >&2
    awk '{ printf "%.2f", $1 + $2 }' "$work/time"
}
echo "machine: $(nproc) cores, load $(cut -d ' ' -f 1-3 /proc/loadavg)"
# Best of ROUNDS (default 3), the two sides alternating, each round from empty state and output.
rounds=${ROUNDS:-3}
best_one="" best_total=""
for round in $(seq 1 "$rounds"); do
    rm -rf "$work/one/.fleet-images" "$work/one/build" "$work/sharded"/state-* "$work/sharded/build"
    one=$(cpu "$cli" build --manifest "$work/one/fleet.json" --parallel 1 --quiet)
    total=0 parts=""
    for k in 1 2 3; do
        t=$(cpu "$cli" build --manifest "$work/sharded/fleet.json" --state "$work/sharded/state-$k" --shard "$k/3" --parallel 1 --quiet)
        parts="$parts $t"
        total=$(awk -v a="$total" -v b="$t" 'BEGIN { printf "%.2f", a + b }')
    done
    echo "round $round: one run ${one} s CPU; shards${parts} = ${total} s CPU"
    best_one=$(awk -v a="${best_one:-$one}" -v b="$one" 'BEGIN { print (b < a ? b : a) }')
    best_total=$(awk -v a="${best_total:-$total}" -v b="$total" 'BEGIN { print (b < a ? b : a) }')
done
ratio=$(awk -v a="$best_total" -v b="$best_one" 'BEGIN { printf "%.3f", a / b }')
verdict=$(awk -v r="$ratio" 'BEGIN { print (r <= 1.05 ? "MET" : "MISSED") }')
echo "best one run, $(grep -c '"id"' "$work/one/fleet.json") sites:   ${best_one} s CPU"
echo "best 3 shards (own states): ${best_total} s CPU"
echo "ratio 3 shards / one run:   ${ratio}  (goal <= 1.05: ${verdict})"
