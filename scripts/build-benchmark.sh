#!/usr/bin/env bash
# Builds etcd's v3 benchmark tool (tools/benchmark of go.etcd.io/etcd/v3, pinned
# in tools/benchmark/go.mod) and caches it in $ETCDSHIM_CACHE (default
# ~/.cache/etcdshim). The build is keyed by the go.sum it was built from.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${ETCDSHIM_CACHE:-$HOME/.cache/etcdshim}"
sum="$(sha256sum "$root/tools/benchmark/go.sum" | cut -c1-12)"
out="$cache/benchmark-$sum/benchmark"
if [ -x "$out" ]; then
  echo "etcd benchmark tool: cached at $out"
  exit 0
fi
mkdir -p "$(dirname "$out")"
(cd "$root/tools/benchmark" && CGO_ENABLED=0 go build -trimpath -o "$out.tmp" .)
mv "$out.tmp" "$out"
echo "etcd benchmark tool: built $out"
