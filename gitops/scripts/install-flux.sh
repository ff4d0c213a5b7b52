#!/usr/bin/env bash
# Bootstrap Flux on a K3s cluster from this repository on GitHub, syncing gitops/clusters/<cluster>.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: gitops/scripts/install-flux.sh [--cluster NAME] [--context NAME] [--secrets-only] [--dry-run]

Pre-flight checks (tools, variables, the cluster and its SOPS key), then the Secrets that are never
committed, then `flux bootstrap github`: installs the Flux controllers with source-watcher (and, for
production, the image automation controllers), adds a read-write deploy key to the repository (image
automation pushes its commits through it), commits gitops/clusters/NAME/flux-system/ and syncs
gitops/clusters/NAME. Safe to run again (that is also how Flux is upgraded: run it with a newer flux CLI).

  --cluster NAME   production (default) or staging: the folder under gitops/clusters/
  --context NAME   kube context to use (default: the current one)
  --secrets-only   only create or update the Secrets below (e.g. a new Prometheus password)
  --dry-run        run the checks and print what would be done; change nothing
  -h, --help       this message

Required environment (not with --secrets-only):
  GITHUB_TOKEN      GitHub token allowed to administer the repository (flux reads it; never printed)
  GITHUB_OWNER      the repository's owner
Optional environment:
  GITHUB_REPOSITORY repository name (default: node-fleet)
  GITHUB_BRANCH     branch Flux syncs and image automation pushes to (default: main)
  GITHUB_PERSONAL   true when GITHUB_OWNER is a user rather than an organisation (default: false)
  PROMETHEUS_LAMBDA_USER (default: node-fleet), PROMETHEUS_LAMBDA_PASSWORD
                    basic-auth login the Lambda uses on NodePort 30090 -> Secret monitoring/prometheus-lambda-htpasswd
  GRAFANA_ADMIN_PASSWORD
                    Grafana's admin password -> Secret monitoring/grafana-admin (random if unset and absent)
The gate hook's URL and HMAC key and the Slack URL are in Git, encrypted: gitops/scripts/sops-age-key.sh
writes them and loads the cluster's age key (Secret flux-system/sops-age), which must be there first.
USAGE
}

die() {
  echo "install-flux.sh: $*" >&2
  exit 1
}

need_tool() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed (or not on PATH): $2"
}

need_var() {
  [[ -n "${!1:-}" ]] || die "$1 is not set: $2 (see --help)"
}

cluster=production
context=""
dry_run=false
secrets_only=false
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cluster | --context)
      [[ $# -ge 2 ]] || die "$1 needs a value"
      if [[ "$1" == --cluster ]]; then cluster="$2"; else context="$2"; fi
      shift 2
      ;;
    --secrets-only)
      secrets_only=true
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

# --- pre-flight ---------------------------------------------------------------------------------------
need_tool flux "https://fluxcd.io/flux/installation/#install-the-flux-cli"
need_tool kubectl "https://kubernetes.io/docs/tasks/tools/"
need_tool openssl "apt-get install openssl"
if ! $secrets_only; then
  need_var GITHUB_TOKEN "a GitHub token that can add deploy keys to the repository"
  need_var GITHUB_OWNER "the GitHub user or organisation that owns the repository"
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
[[ -f "$root/clusters/$cluster/kustomization.yaml" ]] || die "$root/clusters/$cluster/kustomization.yaml not found"
# The ArtifactGenerator needs source-watcher; only production runs image automation.
extras=source-watcher
if [[ -f "$root/clusters/$cluster/image-automation.yaml" ]]; then
  extras="image-reflector-controller,image-automation-controller,$extras"
fi

kube=(kubectl)
fluxcli=(flux)
if [[ -n "$context" ]]; then
  kube+=(--context "$context")
  fluxcli+=(--context "$context")
fi

echo "==> checking the cluster"
"${kube[@]}" cluster-info >/dev/null || die "cannot reach the cluster with kubectl${context:+ (context $context)}"
if ! $secrets_only; then
  "${fluxcli[@]}" check --pre
  if ! "${kube[@]}" -n flux-system get secret sops-age >/dev/null 2>&1; then
    message="no Secret flux-system/sops-age: Flux could not decrypt gitops/secrets/$cluster, and infrastructure waits for it; run gitops/scripts/sops-age-key.sh --cluster $cluster first"
    $dry_run || die "$message"
    echo "note: $message"
  fi
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

# --- Secrets, before Flux needs them ------------------------------------------------------------------
echo "==> Secrets (never committed)"
if [[ -n "${PROMETHEUS_LAMBDA_PASSWORD:-}" ]]; then
  hash="$(printf '%s\n' "$PROMETHEUS_LAMBDA_PASSWORD" | openssl passwd -apr1 -stdin)"
  apply_secret monitoring prometheus-lambda-htpasswd "htpasswd=${PROMETHEUS_LAMBDA_USER:-node-fleet}:$hash"
else
  echo "note: PROMETHEUS_LAMBDA_PASSWORD is not set: the Lambda cannot read Prometheus (NodePort 30090" \
    "answers 500) until you run again with it and --secrets-only."
fi
if [[ -n "${GRAFANA_ADMIN_PASSWORD:-}" ]] || ! "${kube[@]}" -n monitoring get secret grafana-admin >/dev/null 2>&1; then
  apply_secret monitoring grafana-admin "admin-user=admin" \
    "admin-password=${GRAFANA_ADMIN_PASSWORD:-$(openssl rand -base64 24)}"
fi
if $secrets_only; then
  exit 0
fi

# --- Flux ---------------------------------------------------------------------------------------------
echo "==> bootstrapping Flux from github.com/$GITHUB_OWNER/${GITHUB_REPOSITORY:-node-fleet}"
bootstrap=(
  bootstrap github
  "--owner=$GITHUB_OWNER"
  "--repository=${GITHUB_REPOSITORY:-node-fleet}"
  "--branch=${GITHUB_BRANCH:-main}"
  "--path=gitops/clusters/$cluster"
  --interval=1m
  "--components-extra=$extras"
  --read-write-key
)
if [[ "${GITHUB_PERSONAL:-false}" == "true" ]]; then
  bootstrap+=(--personal)
fi
run "${fluxcli[@]}" "${bootstrap[@]}"
if $dry_run; then
  echo "dry run: nothing changed"
  exit 0
fi

ssm_prefix=/node-fleet
[[ "$cluster" == production ]] || ssm_prefix="/node-fleet-$cluster"
cat <<NEXT
==> done; infrastructure, monitoring and apps follow (gitops/scripts/check-status.sh)
Next, once the infrastructure Kustomization is Ready, give the Lambdas their cluster token (never printed here):
  ${kube[*]} -n node-fleet get secret node-fleet-token -o jsonpath='{.data.token}' | base64 -d |
    aws ssm put-parameter --type SecureString --overwrite --value file:///dev/stdin \\
      --name $ssm_prefix/k8s-token     # template.yaml's K8sTokenParam (samconfig.toml for staging)
NEXT
