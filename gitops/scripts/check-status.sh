#!/usr/bin/env bash
# What Flux is doing now, and whether node-fleet's wiring is in place. Read-only.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: gitops/scripts/check-status.sh [--context NAME] [--no-drift]

Read-only: the Flux controllers' health (`flux check`), every Flux object (`flux get all -A`), those not
Ready, Flagger canaries, drift (what differs in the cluster from this checkout, by `flux diff`, and a
canary's Deployment scaled by hand), the drift Flux corrected lately, the Secrets node-fleet needs, and
recent warning events. Exits 0 even when it finds drift: it reports.

  --no-drift       skip the drift checks (they build every folder and ask the API server to dry-run it)
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
drift=true
while [[ $# -gt 0 ]]; do
  case "$1" in
    --context)
      [[ $# -ge 2 ]] || die "--context needs a value"
      kube+=(--context "$2")
      fluxcli+=(--context "$2")
      shift 2
      ;;
    --no-drift)
      drift=false
      shift
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

if $drift; then
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
  echo
  echo "== Drift: the cluster against this checkout (flux diff; what Flux will undo at its next reconcile)"
  # Each Kustomization but flux-system (bootstrap's) and secrets (encrypted: flux diff cannot read them).
  while IFS='=' read -r name path; do
    [[ -n "$name" && "$name" != flux-system && "$name" != secrets ]] || continue
    status=0
    # stdin from /dev/null: the loop reads its list from stdin, which nothing in it may drain.
    "${fluxcli[@]}" diff kustomization "$name" --path "$root/${path#./}" --progress-bar=false </dev/null || status=$?
    case "$status" in
      0) echo "in sync: $name" ;;
      1) echo "DRIFT: $name differs from Git (above); Flux reverts it within its interval, or now: reconcile.sh $name" ;;
      *) echo "could not diff $name (exit $status)" ;;
    esac
  done < <("${kube[@]}" -n flux-system get kustomizations.kustomize.toolkit.fluxcd.io \
    -o jsonpath='{range .items[*]}{.metadata.name}={.spec.path}{"\n"}{end}' 2>/dev/null || true)

  echo
  echo "== Drift Git does not own: a canary's Deployment scaled by hand"
  # Between analyses Flagger keeps a Canary's target at 0 replicas (the primary serves). Replicas are the
  # HPA's and Flagger's, never in Git, so neither Flux nor flux diff sees a `kubectl scale` there.
  while read -r namespace target phase; do
    [[ -n "$namespace" ]] || continue
    case "$phase" in Initialized | Succeeded | Failed) ;; *) continue ;; esac
    replicas="$("${kube[@]}" -n "$namespace" get deployment "$target" -o jsonpath='{.spec.replicas}' </dev/null 2>/dev/null || true)"
    if [[ -n "$replicas" && "$replicas" != 0 ]]; then
      echo "DRIFT: deployment $namespace/$target has $replicas replicas while its canary is $phase (Flagger keeps it at 0);" \
        "undo with: kubectl -n $namespace scale deployment $target --replicas=0"
    else
      echo "in sync: deployment $namespace/$target (canary $phase)"
    fi
  done < <("${kube[@]}" get canaries.flagger.app -A \
    -o jsonpath='{range .items[*]}{.metadata.namespace} {.spec.targetRef.name} {.status.phase}{"\n"}{end}' 2>/dev/null || true)

  echo
  echo "== Changes Flux applied lately (a drift it corrected shows as 'configured' with no new revision)"
  "${fluxcli[@]}" events -n flux-system --for Kustomization/apps 2>/dev/null | grep -E 'configured|created' | tail -n 10 || true
fi

echo
echo "== node-fleet's Secrets (values not shown)"
for ref in flux-system/sops-age flux-system/node-fleet-gate-hook flux-system/slack-webhook \
  monitoring/prometheus-lambda-htpasswd node-fleet/node-fleet-token; do
  if "${kube[@]}" -n "${ref%%/*}" get secret "${ref#*/}" -o name >/dev/null 2>&1; then
    echo "present: $ref"
  else
    echo "MISSING: $ref (see gitops/README.md, Install)"
  fi
done

echo
echo "== Recent warnings"
"${fluxcli[@]}" events -A --types=Warning 2>/dev/null | tail -n 20 || true
