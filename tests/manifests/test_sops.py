"""Encrypted Secrets with SOPS and age: the real sops, age and age-keygen that `make sops` builds, a key
made by the test (never a committed one), and gitops/scripts/sops-age-key.sh against a copy of the tree
with a stand-in kubectl."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from gitops_tree import CLUSTERS, ENCRYPTED, GITOPS, ROOT, build, sops_dir
from script_stubs import stub_env

VALUES = {
    "NODE_FLEET_HOOK_URL": "https://test-hook-4f1c.lambda-url.eu-west-1.on.aws/",
    "NODE_FLEET_HOOK_HMAC_KEY": 'test-hmac-"quoted"\\-9d2e71',
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/TTEST/BTEST/test-slack-7a3b",
}


@pytest.fixture(scope="module")
def sops_bin() -> Path:
    return sops_dir()


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """The script, .sops.yaml and gitops/secrets/, copied: the test writes there, never into the repository."""
    copy = tmp_path / "repo"
    (copy / "gitops" / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / ".sops.yaml", copy / ".sops.yaml")
    shutil.copy(GITOPS / "scripts" / "sops-age-key.sh", copy / "gitops" / "scripts")
    shutil.copytree(GITOPS / "secrets", copy / "gitops" / "secrets")
    return copy


def run_key_script(tree: Path, sops_bin: Path, tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, Path]:
    env, log = stub_env(tmp_path)
    env |= VALUES | {"PATH": f"{sops_bin}:{env['PATH']}", "HOME": str(tmp_path / "home")}
    out = subprocess.run(
        ["bash", str(tree / "gitops" / "scripts" / "sops-age-key.sh"), *args],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip
    return out, log


def sops(sops_bin: Path, *args: str, key: Path | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOPS_")}
    if key is not None:
        env["SOPS_AGE_KEY_FILE"] = str(key)
    return subprocess.run([str(sops_bin / "sops"), *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=60)


def recipients(sops_yaml: Path) -> dict[str, str]:
    """cluster -> age recipient, from the `age: ... # <cluster>` lines of .sops.yaml."""
    return dict((c, k) for k, c in re.findall(r"^\s+age: (age1[0-9a-z]+) # (\w+)$", sops_yaml.read_text(), re.M))


def test_each_cluster_has_its_own_rule_and_recipient():
    rules = yaml.safe_load((ROOT / ".sops.yaml").read_text())["creation_rules"]
    keys = recipients(ROOT / ".sops.yaml")
    assert set(keys) == set(CLUSTERS) and len(set(keys.values())) == len(CLUSTERS)
    for cluster in CLUSTERS:
        path = f"gitops/secrets/{cluster}/node-fleet-gate-hook.sops.yaml"
        matching = [r for r in rules if re.search(r["path_regex"], path)]
        assert [r["age"] for r in matching] == [keys[cluster]], cluster
        assert matching[0]["encrypted_regex"] == "^(data|stringData)$", "metadata stays readable for Flux"
    assert not [r for r in rules if re.search(r["path_regex"], "gitops/apps/demo-app/deployment.yaml")]


def test_the_script_makes_a_key_loads_it_and_encrypts_what_only_it_decrypts(tree, sops_bin, tmp_path, kubectl):
    key = tmp_path / "keys" / "production.agekey"
    before = recipients(tree / ".sops.yaml")
    out, log = run_key_script(tree, sops_bin, tmp_path, "--cluster", "production", "--key-file", str(key))
    assert out.returncode == 0, out.stdout + out.stderr
    assert key.stat().st_mode & 0o777 == 0o600
    public = subprocess.run([str(sops_bin / "age-keygen"), "-y", str(key)], capture_output=True, text=True, check=True)
    after = recipients(tree / ".sops.yaml")
    assert after == before | {"production": public.stdout.strip()}, "production's line only"
    assert after["production"] != before["production"]

    # Nothing secret on the terminal or on a command line (the stand-in kubectl logs its arguments).
    private = next(line for line in key.read_text().splitlines() if line.startswith("AGE-SECRET-KEY-"))
    shown = out.stdout + out.stderr + log.read_text()
    for value in [*VALUES.values(), private]:
        assert value not in shown
    assert f"create secret generic sops-age --from-file=age.agekey={key}" in log.read_text()

    secrets = tree / "gitops" / "secrets" / "production"
    for name, expected in (
        (
            "node-fleet-gate-hook",
            {"address": VALUES["NODE_FLEET_HOOK_URL"], "token": VALUES["NODE_FLEET_HOOK_HMAC_KEY"]},
        ),
        ("slack-webhook", {"address": VALUES["SLACK_WEBHOOK_URL"]}),
    ):
        path = secrets / f"{name}.sops.yaml"
        text = path.read_text()
        assert not [v for v in VALUES.values() if v in text], f"{name}: a value in clear"
        encrypted = yaml.safe_load(text)
        assert encrypted["metadata"] == {"name": name, "namespace": "flux-system"}
        assert all(ENCRYPTED.match(v) for v in encrypted["stringData"].values())
        assert [r["recipient"] for r in encrypted["sops"]["age"]] == [after["production"]]
        # The cluster's key decrypts it, as kustomize-controller does with the Secret sops-age.
        plain = sops(sops_bin, "--decrypt", str(path), key=key)
        assert plain.returncode == 0, plain.stderr
        assert yaml.safe_load(plain.stdout)["stringData"] == expected
        assert "sops" not in yaml.safe_load(plain.stdout)
    # And kustomize still builds the folder Flux applies.
    assert sorted(d["metadata"]["name"] for d in build(kubectl, secrets)) == ["node-fleet-gate-hook", "slack-webhook"]

    # Staging's Secrets were not touched, and production's key cannot read them.
    staging = tree / "gitops" / "secrets" / "staging" / "slack-webhook.sops.yaml"
    assert staging.read_text() == (GITOPS / "secrets" / "staging" / "slack-webhook.sops.yaml").read_text()
    assert sops(sops_bin, "--decrypt", str(staging), key=key).returncode != 0


def test_running_it_again_keeps_the_key(tree, sops_bin, tmp_path):
    key = tmp_path / "staging.agekey"
    (tmp_path / "a").mkdir()
    first, _ = run_key_script(tree, sops_bin, tmp_path / "a", "--cluster", "staging", "--key-file", str(key))
    (tmp_path / "b").mkdir()
    second, _ = run_key_script(tree, sops_bin, tmp_path / "b", "--cluster", "staging", "--key-file", str(key))
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert "made a new age key" in first.stdout and "reusing the age key" in second.stdout
    assert (
        sops(sops_bin, "--decrypt", str(tree / "gitops/secrets/staging/slack-webhook.sops.yaml"), key=key).returncode
        == 0
    )


def test_dry_run_changes_nothing(tree, sops_bin, tmp_path):
    key = tmp_path / "none.agekey"
    files = {
        p: p.read_bytes()
        for p in [tree / ".sops.yaml", *sorted((tree / "gitops" / "secrets").rglob("*"))]
        if p.is_file()
    }
    out, log = run_key_script(tree, sops_bin, tmp_path, "--cluster", "production", "--key-file", str(key), "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "would create or update secret flux-system/sops-age" in out.stdout
    assert {p: p.read_bytes() for p in files} == files and not key.exists()
    assert log.read_text() == ""


@pytest.mark.parametrize(
    ("desc", "args", "unset", "message"),
    [
        ("no cluster", (), None, "--cluster is required"),
        ("unknown cluster", ("--cluster", "qa"), None, "no gitops/secrets/qa"),
        ("no HMAC key", ("--cluster", "staging"), "NODE_FLEET_HOOK_HMAC_KEY", "NODE_FLEET_HOOK_HMAC_KEY is not set"),
        ("no Slack URL", ("--cluster", "staging"), "SLACK_WEBHOOK_URL", "SLACK_WEBHOOK_URL is not set"),
    ],
    ids=lambda x: x if isinstance(x, str) and " " in x else "",
)
def test_the_script_names_what_is_missing(tree, sops_bin, tmp_path, desc, args, unset, message):
    env, log = stub_env(tmp_path)
    env |= {k: v for k, v in VALUES.items() if k != unset} | {"PATH": f"{sops_bin}:{env['PATH']}"}
    out = subprocess.run(
        ["bash", str(tree / "gitops" / "scripts" / "sops-age-key.sh"), *args],
        capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL, timeout=60,
    )  # fmt: skip
    assert out.returncode == 1 and message in out.stderr, (desc, out.stderr)
    assert log.read_text() == ""


def test_the_committed_secrets_are_sealed_for_their_clusters_recipients(sops_bin, tmp_path):
    """Committed ciphertext names exactly its cluster's recipient, and a key made now cannot open it."""
    key = tmp_path / "stranger.agekey"
    subprocess.run([str(sops_bin / "age-keygen"), "-o", str(key)], capture_output=True, check=True)
    keys = recipients(ROOT / ".sops.yaml")
    for cluster in CLUSTERS:
        for path in sorted((GITOPS / "secrets" / cluster).glob("*.sops.yaml")):
            doc = yaml.safe_load(path.read_text())
            assert [r["recipient"] for r in doc["sops"]["age"]] == [keys[cluster]], path
            assert sops(sops_bin, "--decrypt", str(path), key=key).returncode != 0, path
