#!/usr/bin/env bash
# What Flux is doing now: sources, Kustomizations, HelmReleases, image automation, recent warnings.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: gitops/scripts/status.sh [--context NAME]

Prints `flux get all -A`, the objects that are not Ready, and recent warning events. Read-only.
USAGE
}

kube=(kubectl)
fluxcli=(flux)
while [[ $# -gt 0 ]]; do
  case "$1" in
    --context)
      [[ $# -ge 2 ]] || { usage >&2; exit 2; }
      kube+=(--context "$2")
      fluxcli+=(--context "$2")
      shift 2
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *)
      usage >&2
      exit 2
      ;;
  esac
done

for tool in flux kubectl; do
  command -v "$tool" >/dev/null 2>&1 || { echo "status.sh: $tool is not on PATH" >&2; exit 1; }
done

echo "== Flux objects"
"${fluxcli[@]}" get all -A

echo
echo "== Not Ready (these hold node-fleet's scale-down while they reconcile)"
"${fluxcli[@]}" get kustomizations -A --status-selector ready=false || true
"${fluxcli[@]}" get helmreleases -A --status-selector ready=false || true

echo
echo "== Canaries"
"${kube[@]}" get canaries.flagger.app -A 2>/dev/null || echo "(Flagger is not installed)"

echo
echo "== Recent warnings"
"${fluxcli[@]}" events -A --types=Warning 2>/dev/null | tail -n 20 || true
