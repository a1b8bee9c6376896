#!/usr/bin/env bash
# Builds the pinned control-plane tools (etcd, kube-apiserver, kube-controller-manager, kubectl,
# helm) from the Go module proxy into .tools/bin/, once.
#
# Two cache levels, so only the first build on a machine pays the cold compile:
#   .tools/bin/<name> + .tools/bin/.<name>.version   this checkout; a matching stamp = nothing to do
#   ${XDG_CACHE_HOME:-~/.cache}/cobstack-tools/<name>-<version>/<name>
#                                                    per machine; a fresh clone (CI) copies from here
# The Go module and build caches live in $HOME too, so even a version bump rebuilds incrementally.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=versions.env
source "$here/versions.env"
bin_dir="$repo/.tools/bin"
cache_root="${XDG_CACHE_HOME:-$HOME/.cache}/cobstack-tools"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod CGO_ENABLED=0

die() { echo "tools: error: $*" >&2; exit 1; }
trap 'echo "tools: failed: \`$BASH_COMMAND\` (line $LINENO of $0)" >&2' ERR

# The committed wrapper go.mod must pin what versions.env says, or the stamp would lie.
require_pinned() {  # WRAPPER_DIR MODULE VERSION
  grep -qE "^(require)?[[:space:]]*$2 $3( |\$)" "$here/$1/go.mod" \
    || die "hack/tools/$1/go.mod does not pin $2 $3 (hack/tools/versions.env): run \`make tools-gomod\` and commit the result"
}

# go list in a wrapper module: version metadata for the -X stamps (only needed on a real build).
mod_field() { (cd "$here/$1" && go list -m -f "$3" "$2"); }

kube_ldflags() {
  local major="${KUBE_VERSION#v}"; major="${major%%.*}"
  local minor="${KUBE_VERSION#v*.}"; minor="${minor%%.*}"
  # The release's publication time, not now: the same version always builds the same binary.
  local date; date="$(mod_field kubernetes k8s.io/kubernetes '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}')"
  local flags="-s -w" pkg key val
  # Same variables upstream's hack/lib/version.sh stamps, in both packages that report versions.
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    for key in gitVersion gitMajor gitMinor buildDate; do
      case $key in
        gitVersion) val="$KUBE_VERSION" ;; gitMajor) val="$major" ;;
        gitMinor) val="$minor" ;; buildDate) val="$date" ;;
      esac
      flags+=" -X $pkg.$key=$val"
    done
  done
  echo "$flags"
}

helm_ldflags() {
  # Upstream's Makefile derives the default .Capabilities.KubeVersion from its client-go (v0.X.Y -> 1.X).
  local client_go minor; client_go="$(mod_field helm k8s.io/client-go '{{.Version}}')"
  minor="${client_go#v0.}"; minor="${minor%%.*}"
  local flags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" pkg
  for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
    flags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
  done
  echo "$flags"
}

plain_ldflags() { echo "-s -w"; }  # etcd's version is a constant in its source

install_tool() {  # NAME VERSION WRAPPER_DIR PACKAGE LDFLAGS_FUNCTION
  local name="$1" version="$2" wrapper="$3" pkg="$4" ldflags_fn="$5"
  local stamp="$bin_dir/.$name.version" cached="$cache_root/$name-$version/$name"
  if [[ -x "$bin_dir/$name" && "$(cat "$stamp" 2>/dev/null)" == "$version" ]]; then
    echo "tools: $name $version up to date"
    return
  fi
  if [[ ! -x "$cached" ]]; then
    echo "tools: building $name $version from $pkg (cold: several minutes on 2 cores) ..."
    local start=$SECONDS ldflags
    ldflags="$($ldflags_fn)"
    mkdir -p "$(dirname "$cached")"
    # Build to a temporary name: an interrupted build never leaves a half-written cached binary.
    (cd "$here/$wrapper" && go build -p 2 -trimpath -ldflags "$ldflags" -o "$cached.tmp.$$" "$pkg") \
      || die "building $name failed (go build in hack/tools/$wrapper, output above); a network error: rerun \`make tools\`; a compile error: the pinned version may not build with $(go env GOVERSION)"
    mv -f "$cached.tmp.$$" "$cached"
    echo "tools: built $name in $((SECONDS - start)) s -> $cached"
  else
    echo "tools: $name $version from cache $cached"
  fi
  mkdir -p "$bin_dir"
  cp -f "$cached" "$bin_dir/.$name.tmp.$$" && mv -f "$bin_dir/.$name.tmp.$$" "$bin_dir/$name"
  echo "$version" >"$stamp"
}

command -v go >/dev/null || die "go is not on PATH: install Go $(sed -n 's/^go //p' "$here/etcd/go.mod") or newer"
require_pinned kubernetes k8s.io/kubernetes "$KUBE_VERSION"
require_pinned etcd go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
require_pinned helm helm.sh/helm/v3 "$HELM_VERSION"

start=$SECONDS
install_tool etcd "$ETCD_VERSION" etcd go.etcd.io/etcd/server/v3 plain_ldflags
for cmd in kube-apiserver kube-controller-manager kubectl; do
  install_tool "$cmd" "$KUBE_VERSION" kubernetes "k8s.io/kubernetes/cmd/$cmd" kube_ldflags
done
install_tool helm "$HELM_VERSION" helm helm.sh/helm/v3/cmd/helm helm_ldflags
echo "tools: ready in $bin_dir ($((SECONDS - start)) s)"
