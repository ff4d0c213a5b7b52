"""Least privilege, read from template.yaml: what each function may do, and on what conditions.

Every Fn::If in a policy counts with both branches, so a permission is checked whichever way the stack's
conditions go.
"""

from __future__ import annotations

from typing import Any

import pytest

from autoscaler.adapters.dynamodb import cluster_key, gate_key
from template_helpers import flatten_if

AUTOSCALER = "AutoscalerFunction"
HOOK = "GitopsHookFunction"
CLUSTER_REF = {"Ref": "ClusterName"}
VPC_ARN = {"Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:vpc/${VpcId}"}
# RunInstances resources that must come from the launch template itself, and those held to the VPC instead.
FROM_TEMPLATE = ("image", "security-group", "key-pair", "launch-template")
IN_VPC = ("subnet", "network-interface")
READ_ONLY_PREFIXES = ("Describe", "Get", "List")

# Every action each role may take. A new one is a decision: add it here with the template change.
EXPECTED_ACTIONS = {
    AUTOSCALER: {
        "ec2:DescribeInstances",
        "ec2:DescribeInstanceStatus",
        "ec2:DescribeSubnets",
        "ec2:DescribeAvailabilityZones",
        "ec2:DescribeInstanceTypes",
        "ec2:DescribeLaunchTemplates",
        "ec2:DescribeLaunchTemplateVersions",
        "ec2:RunInstances",
        "ec2:CreateTags",
        "ec2:TerminateInstances",
        "ec2:StopInstances",
        "ec2:StartInstances",
        "iam:CreateServiceLinkedRole",
        "iam:PassRole",
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:Query",
        "dynamodb:ConditionCheckItem",
        "ssm:GetParameter",
        "kms:Decrypt",
        "sns:Publish",
        "sqs:SendMessage",
    },
    HOOK: {
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "ssm:GetParameter",
        "kms:Decrypt",
    },
}
# What changes a worker's life: the same scope for each (tags and VPC).
LIFECYCLE_ACTIONS = {"ec2:TerminateInstances", "ec2:StopInstances", "ec2:StartInstances"}
# The SSM parameters (by template parameter) each function may read.
EXPECTED_SECRETS = {
    AUTOSCALER: {"K8sTokenParam", "K8sCaParam", "PrometheusAuthParam", "PrometheusCaParam", "SlackWebhookParam"},
    HOOK: {"WebhookHmacParam", "K8sTokenParam", "K8sCaParam"},
}


def statements(template: dict[str, Any], logical_id: str) -> list[dict[str, Any]]:
    resource = template["Resources"][logical_id]
    if resource["Type"] == "AWS::IAM::Role":
        documents = [p["PolicyDocument"] for p in resource["Properties"].get("Policies", [])]
    else:
        documents = resource["Properties"].get("Policies", [])
        assert all(isinstance(d, dict) and "Statement" in d for d in documents), (
            f"{logical_id}: only inline statements, no managed or SAM policy templates, so this test sees everything"
        )
    found = [s for d in documents for s in flatten_if(d["Statement"])]
    assert found, f"{logical_id} has no policy statements"
    return found


def as_list(value: Any) -> list[Any]:
    return flatten_if(value if isinstance(value, list) else [value])


def actions(statement: dict[str, Any]) -> list[str]:
    return as_list(statement["Action"])


def resources(statement: dict[str, Any]) -> list[Any]:
    return as_list(statement["Resource"])


def condition(statement: dict[str, Any], operator: str, key: str) -> Any:
    return statement.get("Condition", {}).get(operator, {}).get(key)


def arn_text(resource: Any) -> str:
    """The ARN pattern of a Resource entry (the text of its Fn::Sub), or the literal."""
    if isinstance(resource, dict) and "Fn::Sub" in resource:
        sub = resource["Fn::Sub"]
        return sub[0] if isinstance(sub, list) else sub
    return resource if isinstance(resource, str) else repr(resource)


def mutating_ec2(action: str) -> bool:
    service, _, name = action.partition(":")
    return service == "ec2" and not name.startswith(READ_ONLY_PREFIXES)


def with_action(template: dict[str, Any], logical_id: str, action: str) -> list[dict[str, Any]]:
    found = [s for s in statements(template, logical_id) if action in actions(s)]
    assert found, f"{logical_id} has no statement for {action}"
    return found


@pytest.mark.parametrize("logical_id", [AUTOSCALER, HOOK, "WorkerRole"])
def test_only_allow_statements_without_wildcard_actions(template, logical_id):
    for statement in statements(template, logical_id):
        assert statement["Effect"] == "Allow"
        assert "NotAction" not in statement and "NotResource" not in statement
        for action in actions(statement):
            assert "*" not in action, f"{logical_id}: wildcard action {action}"


@pytest.mark.parametrize("logical_id", [AUTOSCALER, HOOK])
def test_each_function_has_exactly_the_expected_actions(template, logical_id):
    granted = {a for s in statements(template, logical_id) for a in actions(s)}
    assert granted == EXPECTED_ACTIONS[logical_id], (
        f"{logical_id}: unexpected {sorted(granted - EXPECTED_ACTIONS[logical_id])}, "
        f"missing {sorted(EXPECTED_ACTIONS[logical_id] - granted)}"
    )


def test_star_resource_only_for_read_only_calls(template):
    for logical_id in (AUTOSCALER, HOOK, "WorkerRole"):
        for statement in statements(template, logical_id):
            if "*" in resources(statement):
                bad = [a for a in actions(statement) if not a.split(":")[1].startswith(READ_ONLY_PREFIXES)]
                assert not bad, f"{logical_id}: {bad} on Resource '*'"


def test_mutating_ec2_calls_are_scoped_and_conditioned(template):
    for statement in statements(template, AUTOSCALER):
        if any(mutating_ec2(a) for a in actions(statement)):
            assert "*" not in resources(statement), f"{statement.get('Sid')}: mutating EC2 call on '*'"
            assert statement.get("Condition"), f"{statement.get('Sid')}: mutating EC2 call without a condition"


def test_terminate_stop_and_start_only_this_clusters_workers_in_its_vpc(template):
    found = [s for a in LIFECYCLE_ACTIONS for s in with_action(template, AUTOSCALER, a)]
    assert found
    for statement in found:
        assert set(actions(statement)) <= LIFECYCLE_ACTIONS
        assert condition(statement, "StringEquals", "aws:ResourceTag/node-fleet.io/cluster") == CLUSTER_REF
        assert condition(statement, "StringEquals", "aws:ResourceTag/node-fleet.io/role") == "worker"
        assert condition(statement, "ArnEquals", "ec2:Vpc") == VPC_ARN
        assert all(arn_text(r).endswith(":instance/*") for r in resources(statement))


def test_instance_mutations_need_the_cluster_tag_and_the_vpc(template):
    """Anyone allowed to tag could mark a foreign instance as ours: the VPC is required too."""
    for statement in statements(template, AUTOSCALER):
        on_instances = any(arn_text(r).endswith(":instance/*") for r in resources(statement))
        at_launch = {"ec2:RunInstances"} == set(actions(statement)) or condition(
            statement, "StringEquals", "ec2:CreateAction"
        )
        if on_instances and not at_launch and any(mutating_ec2(a) for a in actions(statement)):
            assert condition(statement, "StringEquals", "aws:ResourceTag/node-fleet.io/cluster") == CLUSTER_REF
            assert condition(statement, "ArnEquals", "ec2:Vpc") == VPC_ARN, statement.get("Sid")


def test_the_vpc_is_a_required_parameter_the_autoscaler_reads(template):
    assert template["Parameters"]["VpcId"]["Type"] == "AWS::EC2::VPC::Id"
    assert "Default" not in template["Parameters"]["VpcId"]
    environment = template["Resources"][AUTOSCALER]["Properties"]["Environment"]["Variables"]
    assert environment["VPC_ID"] == {"Ref": "VpcId"}


def test_cluster_name_has_no_default(template):
    """The name is what marks an instance as ours: two stacks must never share one by accident."""
    assert "Default" not in template["Parameters"]["ClusterName"]


def launch_template_arn_ok(value: Any) -> bool:
    """An ARN of the stack's launch template: the one it creates, or the one named by LaunchTemplateId."""
    if not (isinstance(value, dict) and isinstance(value.get("Fn::Sub"), list)):
        return False
    text, variables = value["Fn::Sub"]
    chosen = flatten_if(variables.get("Id"))
    return text.endswith(":launch-template/${Id}") and sorted(map(str, chosen)) == sorted(
        map(str, [{"Ref": "WorkerLaunchTemplate"}, {"Ref": "LaunchTemplateId"}])
    )


def test_run_instances_only_through_the_launch_template_and_tagged(template):
    run = with_action(template, AUTOSCALER, "ec2:RunInstances")
    tagged_types = set()
    for statement in run:
        assert actions(statement) == ["ec2:RunInstances"]
        assert launch_template_arn_ok(condition(statement, "ArnLike", "ec2:LaunchTemplate")), (
            f"{statement.get('Sid')}: RunInstances without the ec2:LaunchTemplate condition"
        )
        created = {t for r in resources(statement) for t in ("instance", "volume") if f":{t}/" in arn_text(r)}
        if created:
            assert condition(statement, "StringEquals", "aws:RequestTag/node-fleet.io/cluster") == CLUSTER_REF
            assert condition(statement, "StringEquals", "aws:RequestTag/node-fleet.io/role") == "worker"
            tagged_types |= created
        launch_templates = [r for r in resources(statement) if ":launch-template/" in arn_text(r)]
        assert all(launch_template_arn_ok(r) for r in launch_templates), "RunInstances on another launch template"
    assert tagged_types == {"instance", "volume"}, "instances and volumes must both be tagged on create"


def resource_types(statement: dict[str, Any]) -> set[str]:
    """The EC2 resource types of a statement's ARNs (`...:image/*` -> image)."""
    return {arn_text(r).rsplit(":", 1)[-1].split("/", 1)[0] for r in resources(statement)}


def test_run_instances_cannot_override_the_templates_resources(template):
    """The AMI, security groups and key pair must be the launch template's; the subnet (the request's own,
    one per zone) and its network interface must be in the cluster's VPC."""
    seen = set()
    for statement in with_action(template, AUTOSCALER, "ec2:RunInstances"):
        types = resource_types(statement)
        seen |= types
        if types & set(FROM_TEMPLATE):
            assert condition(statement, "Bool", "ec2:IsLaunchTemplateResource") == "true", statement["Sid"]
        if types & set(IN_VPC):
            assert condition(statement, "ArnEquals", "ec2:Vpc") == VPC_ARN, statement["Sid"]
    assert seen >= {*FROM_TEMPLATE, *IN_VPC}, "every resource a launch uses is granted by some statement"


def test_the_hook_writes_only_its_gate_partition(template):
    """The public URL's function: dynamodb:LeadingKeys holds it to the partition the adapter gives the gate."""
    for statement in statements(template, HOOK):
        if any(a.startswith("dynamodb:") for a in actions(statement)):
            (leading,) = condition(statement, "ForAllValues:StringEquals", "dynamodb:LeadingKeys")
            assert leading == {"Fn::Sub": "gate#${ClusterName}"}, statement["Sid"]
            assert leading["Fn::Sub"].replace("${ClusterName}", "demo") == gate_key("demo") != cluster_key("demo")
            assert set(statement["Condition"]) == {"ForAllValues:StringEquals"}


def test_create_tags_only_on_create_or_on_own_workers(template):
    for statement in with_action(template, AUTOSCALER, "ec2:CreateTags"):
        assert actions(statement) == ["ec2:CreateTags"]
        on_create = condition(statement, "StringEquals", "ec2:CreateAction") == "RunInstances"
        own = condition(statement, "StringEquals", "aws:ResourceTag/node-fleet.io/cluster") == CLUSTER_REF
        assert on_create or own, f"{statement.get('Sid')}: CreateTags without a tag-on-create or cluster-tag condition"
        if own:
            keys = condition(statement, "ForAllValues:StringNotEquals", "aws:TagKeys")
            assert set(keys) == {"node-fleet.io/cluster", "node-fleet.io/role"}, "identity tags must not change"


def test_pass_role_only_for_the_worker_role(template):
    for statement in with_action(template, AUTOSCALER, "iam:PassRole"):
        assert actions(statement) == ["iam:PassRole"]
        assert sorted(map(str, resources(statement))) == sorted(
            map(str, [{"Fn::GetAtt": ["WorkerRole", "Arn"]}, {"Ref": "WorkerRoleArn"}])
        )
        assert condition(statement, "StringEquals", "iam:PassedToService") == {"Fn::Sub": "ec2.${AWS::URLSuffix}"}


def test_service_linked_role_only_for_spot(template):
    for statement in with_action(template, AUTOSCALER, "iam:CreateServiceLinkedRole"):
        assert condition(statement, "StringEquals", "iam:AWSServiceName") == "spot.amazonaws.com"
        assert all("AWSServiceRoleForEC2Spot" in arn_text(r) for r in resources(statement))


@pytest.mark.parametrize("logical_id", [AUTOSCALER, HOOK])
def test_dynamodb_only_on_the_state_table(template, logical_id):
    for statement in statements(template, logical_id):
        if any(a.startswith("dynamodb:") for a in actions(statement)):
            assert resources(statement) == [{"Fn::GetAtt": ["StateTable", "Arn"]}]


@pytest.mark.parametrize("logical_id", [AUTOSCALER, HOOK])
def test_ssm_only_on_the_named_parameters(template, logical_id):
    read = set()
    for statement in statements(template, logical_id):
        if any(a.startswith("ssm:") for a in actions(statement)):
            assert actions(statement) == ["ssm:GetParameter"]
            for resource in resources(statement):
                text = arn_text(resource)
                prefix = "arn:${AWS::Partition}:ssm:${AWS::Region}:${AWS::AccountId}:parameter${"
                assert text.startswith(prefix) and text.endswith("}"), f"{logical_id}: SSM resource {text}"
                read.add(text[len(prefix) : -1])
    assert read == EXPECTED_SECRETS[logical_id]
    for name in read:
        assert template["Parameters"][name]["AllowedPattern"].startswith(("^/", "^(/")), (
            f"{name} must be a path (it is appended to 'parameter' in the ARN)"
        )


@pytest.mark.parametrize("logical_id", [AUTOSCALER, HOOK, "WorkerRole"])
def test_kms_decrypt_only_through_ssm(template, logical_id):
    for statement in with_action(template, logical_id, "kms:Decrypt"):
        assert condition(statement, "StringEquals", "kms:ViaService") == {
            "Fn::Sub": "ssm.${AWS::Region}.${AWS::URLSuffix}"
        }


def test_notifications_only_to_the_topic(template):
    for statement in with_action(template, AUTOSCALER, "sns:Publish"):
        assert resources(statement) == [{"Ref": "NotifyTopic"}]


def test_worker_role_reads_only_its_join_settings(template):
    assert template["Resources"]["WorkerRole"]["Condition"] == "CreateLaunchTemplate"
    granted = {a for s in statements(template, "WorkerRole") for a in actions(s)}
    assert granted == {"ssm:GetParameter", "kms:Decrypt"}
    (ssm,) = with_action(template, "WorkerRole", "ssm:GetParameter")
    names = {arn_text(r).rsplit("parameter", 1)[1] for r in resources(ssm)}
    assert names == {"${K3sTokenParam}", "${K3sServerUrlParam}"}


def test_gitops_hook_url_is_public_but_bounded(template):
    properties = template["Resources"][HOOK]["Properties"]
    assert properties["FunctionUrlConfig"]["AuthType"] == "NONE", "the HMAC signature is the URL's authentication"
    assert properties["ReservedConcurrentExecutions"] == {"Ref": "GitopsHookReservedConcurrency"}
    bound = template["Parameters"]["GitopsHookReservedConcurrency"]
    assert bound["MinValue"] >= 1 and bound["MaxValue"] <= 100
    assert "FunctionUrlConfig" not in template["Resources"][AUTOSCALER]["Properties"]


def test_dead_letter_queue_accepts_only_the_stacks_rules(template):
    policy = template["Resources"]["FailedEventsQueuePolicy"]["Properties"]["PolicyDocument"]
    (statement,) = policy["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    sources = condition(statement, "ArnEquals", "aws:SourceArn")
    expected = []
    for function in (AUTOSCALER, HOOK):
        for name, event in template["Resources"][function]["Properties"]["Events"].items():
            if event["Properties"].get("DeadLetterConfig"):
                expected.append({"Fn::GetAtt": [f"{function}{name}", "Arn"]})
    assert sorted(map(str, sources)) == sorted(map(str, expected))
