#!/usr/bin/env bash
# require.sh TARGET TOOL... : fail clearly when a tool a make target needs is missing.
# `docker` also needs a reachable daemon, not just the client.
set -euo pipefail
target="$1"; shift
missing=()
for tool in "$@"; do
  if ! command -v "$tool" >/dev/null 2>&1; then
    missing+=("$tool (not on PATH)")
  elif [[ "$tool" == docker ]] && ! docker info >/dev/null 2>&1; then
    missing+=("a running Docker daemon (the docker client cannot reach one)")
  fi
done
if ((${#missing[@]})); then
  printf 'make %s needs %s: missing %s.\n' "$target" "$(echo "$*" | sed "s/ / and /g")" \
    "$(printf '%s; ' "${missing[@]}" | sed 's/; $//')" >&2
  echo "Install them and retry (docs/kubernetes.md, \"Local cluster with kind\")." >&2
  exit 1
fi
