#!/usr/bin/env bash
# Ask Flux to reconcile now instead of at the next interval, fetching the source first.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: gitops/scripts/reconcile.sh [--context NAME] [KUSTOMIZATION...]

Runs `flux reconcile kustomization NAME --with-source` for each name, in dependency order by default:
flux-system infrastructure monitoring apps. node-fleet's gate holds scale-down until each is done.
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
names=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --context)
      [[ $# -ge 2 ]] || die "--context needs a value"
      fluxcli+=(--context "$2")
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
  names=(flux-system infrastructure monitoring apps)
fi

need_tool flux "https://fluxcd.io/flux/installation/#install-the-flux-cli"

for name in "${names[@]}"; do
  echo "==> $name"
  "${fluxcli[@]}" reconcile kustomization "$name" --namespace flux-system --with-source
done
