#!/usr/bin/env bash
# Ask Flux to reconcile now instead of at the next interval, fetching the source first.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: gitops/scripts/reconcile.sh [--context NAME] [KUSTOMIZATION...]

Fetches the repository now (`flux reconcile source git flux-system`), waits until the ArtifactGenerator
`gitops` has made the cluster's artifact from it, then runs `flux reconcile kustomization NAME` for each
name, in dependency order by default: flux-system secrets infrastructure monitoring apps. node-fleet's
gate holds scale-down until each is done.
USAGE
}

die() {
  echo "reconcile.sh: $*" >&2
  exit 1
}

need_tool() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed (or not on PATH): $2"
}

fluxcli=(flux)
kube=(kubectl)
names=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --context)
      [[ $# -ge 2 ]] || die "--context needs a value"
      fluxcli+=(--context "$2")
      kube+=(--context "$2")
      shift 2
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    -*)
      usage >&2
      exit 2
      ;;
    *)
      names+=("$1")
      shift
      ;;
  esac
done
if [[ ${#names[@]} -eq 0 ]]; then
  names=(flux-system secrets infrastructure monitoring apps)
fi

need_tool flux "https://fluxcd.io/flux/installation/#install-the-flux-cli"
need_tool kubectl "https://kubernetes.io/docs/tasks/tools/"

echo "==> source"
"${fluxcli[@]}" reconcile source git flux-system --namespace flux-system
# The Kustomizations but flux-system read the ExternalArtifact the ArtifactGenerator makes from that
# source: ask it to regenerate, and wait until it has handled the request, so they apply the new commit.
stamp="$(date -u +%Y%m%dT%H%M%S%N)"
generator=artifactgenerators.source.extensions.fluxcd.io/gitops
"${kube[@]}" -n flux-system annotate --overwrite "$generator" "reconcile.fluxcd.io/requestedAt=$stamp" >/dev/null
"${kube[@]}" -n flux-system wait "$generator" --timeout=2m \
  --for="jsonpath={.status.lastHandledReconcileAt}=$stamp" >/dev/null

for name in "${names[@]}"; do
  echo "==> $name"
  "${fluxcli[@]}" reconcile kustomization "$name" --namespace flux-system
done
