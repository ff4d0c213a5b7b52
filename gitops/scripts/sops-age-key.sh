#!/usr/bin/env bash
# A cluster's age key for SOPS: made once, loaded into the cluster for Flux, and used to encrypt the
# cluster's Secrets into gitops/secrets/<cluster>/. No secret value ever goes on a command line or to
# the terminal: values travel in files only this user can read, removed on exit.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: gitops/scripts/sops-age-key.sh --cluster NAME [--context NAME] [--key-file PATH] [--dry-run]

For the cluster NAME (production or staging):
  1. makes an age key in --key-file (default ~/.config/sops/age/node-fleet-NAME.agekey, mode 600),
     or reuses the one already there: keep it, it is what decrypts the cluster's Secrets for you;
  2. writes its public key on the cluster's line of .sops.yaml;
  3. encrypts gitops/secrets/NAME/node-fleet-gate-hook.sops.yaml from NODE_FLEET_HOOK_URL and
     NODE_FLEET_HOOK_HMAC_KEY, and slack-webhook.sops.yaml from SLACK_WEBHOOK_URL;
  4. creates or updates the Secret flux-system/sops-age (key age.agekey) that Flux decrypts with.
Then commit .sops.yaml and gitops/secrets/NAME. --dry-run does 1 to 3 in a temporary copy and says what
step 4 would do. Needs age-keygen, sops (`make sops` builds both) and kubectl.
USAGE
}

die() {
  echo "sops-age-key.sh: $*" >&2
  exit 1
}

need_tool() {
  command -v "$1" >/dev/null 2>&1 || die "$1 is not installed (or not on PATH): $2"
}

need_var() {
  [[ -n "${!1:-}" ]] || die "$1 is not set: $2"
}

root="$(cd "$(dirname "$0")/../.." && pwd)"
cluster=""
key_file=""
dry_run=false
kube=(kubectl)
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cluster | --context | --key-file)
      [[ $# -ge 2 ]] || die "$1 needs a value"
      case "$1" in
        --cluster) cluster="$2" ;;
        --context) kube+=(--context "$2") ;;
        --key-file) key_file="$2" ;;
      esac
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
    *)
      usage >&2
      exit 2
      ;;
  esac
done

[[ -n "$cluster" ]] || die "--cluster is required (production or staging)"
[[ -d "$root/gitops/secrets/$cluster" ]] || die "no gitops/secrets/$cluster: not a cluster of this repository"
grep -qE "^ +age: age1[0-9a-z]+ # $cluster\$" "$root/.sops.yaml" || die ".sops.yaml has no age line for $cluster"
need_tool age-keygen "make sops, then put its folder (make -s sops-path) on PATH"
need_tool sops "make sops, then put its folder (make -s sops-path) on PATH"
need_tool kubectl "https://kubernetes.io/docs/tasks/tools/"
need_var NODE_FLEET_HOOK_URL "the gitops hook's Function URL (a stack output of sam deploy)"
need_var NODE_FLEET_HOOK_HMAC_KEY "the webhook HMAC key, the value of the SSM parameter WebhookHmacParam names"
need_var SLACK_WEBHOOK_URL "the Slack incoming-webhook URL"
[[ "$NODE_FLEET_HOOK_URL" == https://* ]] || die "NODE_FLEET_HOOK_URL must be the https:// Function URL"

umask 077
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

key_file="${key_file:-$HOME/.config/sops/age/node-fleet-$cluster.agekey}"
tree="$root"
if $dry_run; then
  # Everything below happens in a copy: the repository and the key folder stay as they are.
  tree="$work/tree"
  mkdir -p "$tree/gitops/secrets"
  cp "$root/.sops.yaml" "$tree/"
  cp -R "$root/gitops/secrets/$cluster" "$tree/gitops/secrets/"
  [[ -f "$key_file" ]] && cp "$key_file" "$work/key" || true
  key_file="$work/key"
fi
if [[ -f "$key_file" ]]; then
  echo "reusing the age key in $key_file"
else
  mkdir -p "$(dirname "$key_file")"
  age-keygen -o "$key_file" 2>/dev/null
  echo "made a new age key in $key_file (keep it safe: it decrypts $cluster's Secrets)"
fi
public="$(age-keygen -y "$key_file")"

sed -i -E "s|^( +age: )age1[0-9a-z]+( # $cluster)\$|\\1$public\\2|" "$tree/.sops.yaml"
echo "$cluster's recipient in .sops.yaml: $public"

# secret NAME KEY=VARIABLE...: the Secret's manifest, its values read from the variables, to stdout.
secret() {
  local name="$1" pair var
  shift
  printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: flux-system\ntype: Opaque\nstringData:\n' "$name"
  for pair in "$@"; do
    var="${pair#*=}"
    printf '  %s: "%s"\n' "${pair%%=*}" "$(printf '%s' "${!var}" | sed 's/["\\]/\\&/g')"
  done
}

encrypt() {
  local name="$1" target="$tree/gitops/secrets/$cluster/$1.sops.yaml"
  shift
  secret "$name" "$@" >"$work/plain.yaml"
  # The target's name picks the creation rule of .sops.yaml; the plaintext never enters the tree.
  (cd "$tree" && sops --encrypt --filename-override "$target" "$work/plain.yaml") >"$work/enc.yaml"
  mv "$work/enc.yaml" "$target"
  rm -f "$work/plain.yaml"
  echo "encrypted ${target#"$tree"/}"
}

encrypt node-fleet-gate-hook address=NODE_FLEET_HOOK_URL token=NODE_FLEET_HOOK_HMAC_KEY
encrypt slack-webhook address=SLACK_WEBHOOK_URL

if $dry_run; then
  echo "would create or update secret flux-system/sops-age (age.agekey) from the key"
  exit 0
fi
"${kube[@]}" create namespace flux-system --dry-run=client -o yaml | "${kube[@]}" apply -f - >/dev/null
"${kube[@]}" -n flux-system create secret generic sops-age --from-file=age.agekey="$key_file" \
  --dry-run=client -o yaml | "${kube[@]}" apply -f - >/dev/null
echo "created or updated secret flux-system/sops-age"
echo "now commit .sops.yaml and gitops/secrets/$cluster/"
