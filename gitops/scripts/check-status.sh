#!/usr/bin/env bash
# What Flux is doing now, and whether node-fleet's wiring is in place. Read-only.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: gitops/scripts/check-status.sh [--context NAME]

Read-only: the Flux controllers' health (`flux check`), every Flux object (`flux get all -A`), those not
Ready, Flagger canaries, the Secrets node-fleet needs, and recent warning events.
USAGE
}

die() {
  echo "check-status.sh: $*" >&2
  exit 1
}

need_tool() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed (or not on PATH): $2"
}

kube=(kubectl)
fluxcli=(flux)
while [[ $# -gt 0 ]]; do
  case "$1" in
    --context)
      [[ $# -ge 2 ]] || die "--context needs a value"
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

need_tool flux "https://fluxcd.io/flux/installation/#install-the-flux-cli"
need_tool kubectl "https://kubernetes.io/docs/tasks/tools/"

echo "== Flux controllers"
"${fluxcli[@]}" check || true

echo
echo "== Flux objects"
"${fluxcli[@]}" get all -A

echo
echo "== Not Ready (while one reconciles, node-fleet's gate holds scale-down)"
"${fluxcli[@]}" get kustomizations -A --status-selector ready=false || true
"${fluxcli[@]}" get helmreleases -A --status-selector ready=false || true

echo
echo "== Canaries"
"${kube[@]}" get canaries.flagger.app -A 2>/dev/null || echo "(Flagger is not installed)"

echo
echo "== node-fleet's Secrets (values not shown)"
for ref in flux-system/node-fleet-gate-hook monitoring/prometheus-lambda-htpasswd node-fleet/node-fleet-token; do
  if "${kube[@]}" -n "${ref%%/*}" get secret "${ref#*/}" -o name >/dev/null 2>&1; then
    echo "present: $ref"
  else
    echo "MISSING: $ref (see gitops/README.md, Install)"
  fi
done

echo
echo "== Recent warnings"
"${fluxcli[@]}" events -A --types=Warning 2>/dev/null | tail -n 20 || true
