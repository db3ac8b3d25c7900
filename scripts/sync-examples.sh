#!/bin/bash
# sync-examples.sh: copy the shared demo files into the examples.
#
#   scripts/sync-examples.sh          copy
#   scripts/sync-examples.sh --check  only compare; exit 1 if a copy is stale
#
# A manifest may only use files inside its own folder (paths must not climb
# out with ".."), so each example carries copies of variants/common/* and,
# for the matrix example, of the demo base image. This keeps them identical
# to the originals at the repository root.
set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo_dir=$(dirname "$script_dir")
check=false
case ${1:-} in
    --check) check=true ;;
    "") ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

# source (relative to the repository) | destination (relative to the repository)
pairs=(
    "variants/common/config.yaml|examples/matrix/variants/common/config.yaml"
    "variants/common/provision.sh|examples/matrix/variants/common/provision.sh"
    "base/demo-raspios-bookworm-arm64.img.xz|examples/matrix/base/demo-raspios-bookworm-arm64.img.xz"
    "variants/common/config.yaml|examples/raspios-greengrass/variants/common/config.yaml"
    "variants/common/provision.sh|examples/raspios-greengrass/variants/common/provision.sh"
    "variants/common/set_os.sh|examples/raspios-greengrass/variants/common/set_os.sh"
    "certs/demo-login.hash|examples/raspios-greengrass/certs/login.hash"
    "certs/demo-login.hash|examples/matrix/certs/login.hash"
    "keys/demo-operator.pub|examples/raspios-greengrass/keys/operator.pub"
    "keys/demo-operator.pub|examples/matrix/keys/operator.pub"
)

stale=0
for pair in "${pairs[@]}"; do
    src=$repo_dir/${pair%%|*}
    dst=$repo_dir/${pair#*|}
    if [ -f "$dst" ] && cmp -s "$src" "$dst"; then
        continue
    fi
    if [ "$check" = true ]; then
        echo "sync-examples: ${pair#*|} differs from ${pair%%|*}" >&2
        stale=$((stale + 1))
    else
        mkdir -p "$(dirname "$dst")"
        cp -p "$src" "$dst"
        echo "sync-examples: ${pair%%|*} -> ${pair#*|}"
    fi
done
if [ "$stale" -gt 0 ]; then
    echo "sync-examples: $stale stale copies; run scripts/sync-examples.sh" >&2
    exit 1
fi
