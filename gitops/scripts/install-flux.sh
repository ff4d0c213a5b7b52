#!/usr/bin/env bash
# Install Flux into the current kube context and point it at gitops/clusters/production.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: gitops/scripts/install.sh [--context NAME] [--dry-run] REPO_URL

Installs the Flux controllers (with image automation), creates the Secrets that are never committed,
and applies gitops/clusters/production/flux-system.yaml; from then on Flux syncs the rest from Git.

  REPO_URL       SSH URL of this repository, e.g. ssh://git@github.com/OWNER/node-fleet. It must be
                 the spec.url of gitops/clusters/production/flux-system.yaml (edit, commit, push first).
  --context NAME kube context to use (default: the current one)
  --dry-run      check everything and print what would be done, change nothing
  -h, --help     this message

Environment (each optional; the matching Secret is created or updated only when it is set):
  NODE_FLEET_HOOK_URL, NODE_FLEET_HOOK_HMAC_KEY
                 the gate hook's Function URL and HMAC key -> flux-system/node-fleet-gate-hook
  PROMETHEUS_LAMBDA_USER, PROMETHEUS_LAMBDA_PASSWORD
                 basic-auth login the Lambda uses on NodePort 30090 -> monitoring/prometheus-lambda-htpasswd
  GRAFANA_ADMIN_PASSWORD
                 Grafana's admin password -> monitoring/grafana-admin (random when unset and absent)
USAGE
}

die() {
  echo "install.sh: $*" >&2
  exit 1
}

context=""
dry_run=false
repo_url=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --context)
      [[ $# -ge 2 ]] || die "--context needs a value"
      context="$2"
      shift 2
      ;;
    --dry-run)
      dry_run=true
      shift
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    -*)
      usage >&2
      die "unknown option: $1"
      ;;
    *)
      [[ -z "$repo_url" ]] || die "one REPO_URL only"
      repo_url="$1"
      shift
      ;;
  esac
done
if [[ -z "$repo_url" ]]; then
  usage >&2
  exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sync_file="$root/clusters/production/flux-system.yaml"

for tool in flux kubectl openssl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not on PATH"
done
[[ -f "$sync_file" ]] || die "$sync_file not found"
grep -q "url: ${repo_url}\$" "$sync_file" ||
  die "spec.url in $sync_file is not $repo_url: set it, commit and push, then run again"

kube=(kubectl)
fluxcli=(flux)
if [[ -n "$context" ]]; then
  kube+=(--context "$context")
  fluxcli+=(--context "$context")
fi

run() {
  if $dry_run; then
    echo "would run: $*"
  else
    "$@"
  fi
}

secret_dir="$(mktemp -d)"
trap 'rm -rf "$secret_dir"' EXIT

# Create or update a generic Secret from KEY=VALUE pairs. Values pass through files in a private
# temporary folder, never through a command line (ps) or the output.
apply_secret() {
  local namespace="$1" name="$2" pair key
  local -a files=()
  shift 2
  if $dry_run; then
    echo "would create or update secret $namespace/$name"
    return
  fi
  rm -f "$secret_dir"/*
  for pair in "$@"; do
    key="${pair%%=*}"
    printf '%s' "${pair#*=}" >"$secret_dir/$key"
    files+=("--from-file=$key=$secret_dir/$key")
  done
  "${kube[@]}" create namespace "$namespace" --dry-run=client -o yaml | "${kube[@]}" apply -f - >/dev/null
  "${kube[@]}" -n "$namespace" create secret generic "$name" "${files[@]}" --dry-run=client -o yaml |
    "${kube[@]}" apply -f - >/dev/null
  echo "secret $namespace/$name set"
}

echo "==> checking the cluster"
"${fluxcli[@]}" check --pre

echo "==> installing Flux"
run "${fluxcli[@]}" install --components-extra=image-reflector-controller,image-automation-controller

echo "==> Secrets (never committed)"
if ! "${kube[@]}" -n flux-system get secret flux-system >/dev/null 2>&1; then
  run "${fluxcli[@]}" create secret git flux-system --url="$repo_url"
  if ! $dry_run; then
    echo "Add this public key to the repository as a deploy key WITH WRITE ACCESS (image automation pushes):"
    "${kube[@]}" -n flux-system get secret flux-system -o jsonpath='{.data.identity\.pub}' | base64 -d
    echo
    read -r -p "Press Enter once the deploy key is added... " _ </dev/tty || true
  fi
fi
if [[ -n "${NODE_FLEET_HOOK_URL:-}" || -n "${NODE_FLEET_HOOK_HMAC_KEY:-}" ]]; then
  [[ -n "${NODE_FLEET_HOOK_URL:-}" && -n "${NODE_FLEET_HOOK_HMAC_KEY:-}" ]] ||
    die "set both NODE_FLEET_HOOK_URL and NODE_FLEET_HOOK_HMAC_KEY"
  apply_secret flux-system node-fleet-gate-hook \
    "address=$NODE_FLEET_HOOK_URL" "token=$NODE_FLEET_HOOK_HMAC_KEY"
fi
if [[ -n "${PROMETHEUS_LAMBDA_PASSWORD:-}" ]]; then
  hash="$(printf '%s\n' "$PROMETHEUS_LAMBDA_PASSWORD" | openssl passwd -apr1 -stdin)"
  apply_secret monitoring prometheus-lambda-htpasswd "htpasswd=${PROMETHEUS_LAMBDA_USER:-node-fleet}:$hash"
fi
if [[ -n "${GRAFANA_ADMIN_PASSWORD:-}" ]] || ! "${kube[@]}" -n monitoring get secret grafana-admin >/dev/null 2>&1; then
  apply_secret monitoring grafana-admin "admin-user=admin" \
    "admin-password=${GRAFANA_ADMIN_PASSWORD:-$(openssl rand -base64 24)}"
fi

echo "==> pointing Flux at $repo_url"
run "${kube[@]}" apply -f "$sync_file"
run "${fluxcli[@]}" reconcile source git flux-system --timeout=2m
run "${kube[@]}" -n flux-system wait kustomization/flux-system --for=condition=Ready --timeout=5m

echo "==> done; infrastructure, monitoring and apps follow (gitops/scripts/status.sh)"
run "${fluxcli[@]}" get kustomizations
