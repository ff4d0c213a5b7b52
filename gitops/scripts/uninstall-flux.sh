#!/usr/bin/env bash
# Remove Flux from the cluster; what it applied stays, unmanaged.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: gitops/scripts/uninstall-flux.sh [--context NAME] [--keep-namespace] [--yes] [--dry-run]

Runs `flux uninstall`: deletes the Flux controllers, their custom resources (after removing their
finalizers, so nothing they applied is deleted) and CRDs. Prometheus, Grafana, the demo app and
node-fleet's RBAC stay in the cluster, no longer reconciled. The flux-system namespace goes too, with the
gate hook Secret, unless --keep-namespace. With Flux gone, node-fleet's gate finds no Flux objects and
holds nothing.

Left for you: the deploy key on GitHub, and gitops/clusters/production/flux-system/ in Git (re-run
install-flux.sh to come back).

  --context NAME     kube context to use (default: the current one)
  --keep-namespace   keep the flux-system namespace and its Secrets
  --yes              do not ask for confirmation (needed when not run from a terminal)
  --dry-run          print what would be done; change nothing
  -h, --help         this message
USAGE
}

die() {
  echo "uninstall-flux.sh: $*" >&2
  exit 1
}

need_tool() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed (or not on PATH): $2"
}

kube=(kubectl)
fluxcli=(flux)
uninstall=(uninstall --silent)
assume_yes=false
dry_run=false
while [[ $# -gt 0 ]]; do
  case "$1" in
    --context)
      [[ $# -ge 2 ]] || die "--context needs a value"
      kube+=(--context "$2")
      fluxcli+=(--context "$2")
      shift 2
      ;;
    --keep-namespace)
      uninstall+=(--keep-namespace)
      shift
      ;;
    --yes)
      assume_yes=true
      shift
      ;;
    --dry-run)
      dry_run=true
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
"${kube[@]}" cluster-info >/dev/null || die "cannot reach the cluster with kubectl"
target="$("${kube[@]}" config current-context 2>/dev/null || true)"

if $dry_run; then
  echo "would run: ${fluxcli[*]} ${uninstall[*]}"
  exit 0
fi
if ! $assume_yes; then
  [[ -t 0 ]] || die "not a terminal: pass --yes to uninstall Flux without a prompt"
  read -r -p "Uninstall Flux from ${target:-the current context}? Type 'yes': " answer
  [[ "$answer" == "yes" ]] || die "not confirmed; nothing changed"
fi
"${fluxcli[@]}" "${uninstall[@]}"
echo "Flux removed. Remove the deploy key from the GitHub repository's settings if you are not coming back."
