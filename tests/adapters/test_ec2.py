"""The EC2 Fleet adapter against moto: options, zones, launches with capacity fallback, idempotency,
tag-on-create, listing and guarded terminates. Capacity errors are injected with botocore's
`before-call.ec2.RunInstances` hook, since moto always has capacity."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
from botocore.exceptions import ClientError

from autoscaler.adapters.ec2 import (
    CAPACITY_ERRORS,
    CLUSTER_TAG,
    LAUNCH_TOKEN_TAG,
    ROLE_TAG,
    Ec2Fleet,
    NotOurInstance,
)
from autoscaler.config import ConfigError
from autoscaler.config.ec2 import Ec2Options
from autoscaler.model import InstanceState

CLUSTER = "demo"
A, B, C = "eu-west-1a", "eu-west-1b", "eu-west-1c"
TYPES = ("t3.large", "m5.large")
SUBNET = "subnet-0123456789abcdef0"
VPC = "vpc-0123456789abcdef0"
TEMPLATE = "lt-0123456789abcdef0"


def fleet_for(network, client, *, types=TYPES, spot_share=0.0, subnets=None, template=True) -> Ec2Fleet:
    options = Ec2Options(
        subnet_ids=subnets or network.subnet_ids,
        vpc_id=network.vpc_id,
        launch_template_id=network.launch_template_id if template else None,
        instance_types=types,
        spot_share=spot_share,
    )
    return Ec2Fleet(options, CLUSTER, client=client)


@dataclass
class RunInstancesFaults:
    """A before-call hook: answers RunInstances with an error for the matching (type, zone, market)
    rules (None matches anything), lets the others through, and records every call."""

    zone_of: dict[str, str]
    rules: dict[tuple[str | None, str | None, str | None], str] = field(default_factory=dict)
    calls: list[tuple[str, str, str]] = field(default_factory=list)
    client_tokens: list[str] = field(default_factory=list)

    def __call__(self, params, **kwargs):
        body = params["body"]
        market = "spot" if body.get("InstanceMarketOptions.MarketType") == "spot" else "on-demand"
        call = (body["InstanceType"], self.zone_of[body["SubnetId"]], market)
        self.calls.append(call)
        self.client_tokens.append(body["ClientToken"])
        for rule, code in self.rules.items():
            if all(want is None or want == got for want, got in zip(rule, call, strict=True)):
                raise ClientError({"Error": {"Code": code, "Message": "injected by the test"}}, "RunInstances")
        return None


@pytest.fixture
def faults(aws_ec2_client, aws_network) -> RunInstancesFaults:
    hook = RunInstancesFaults(zone_of={s: z for z, s in aws_network.subnets.items()})
    aws_ec2_client.meta.events.register("before-call.ec2.RunInstances", hook)
    return hook


def placements(fleet: Ec2Fleet) -> Counter:
    return Counter((i.instance_type, i.az, i.lifecycle) for i in fleet.list_workers())


def tags_of(client, instance_id: str) -> dict[str, str]:
    raw = client.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]
    return {t["Key"]: t["Value"] for t in raw.get("Tags", [])}


def run_foreign(client, network, tags: dict[str, str], subnet: str | None = None) -> str:
    """An instance the fleet did not launch, with the given tags (in the cluster's VPC unless `subnet` says)."""
    spec = [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}] if tags else []
    answer = client.run_instances(
        ImageId="ami-12c6146b", MinCount=1, MaxCount=1, SubnetId=subnet or network.subnets[A], TagSpecifications=spec
    )
    return answer["Instances"][0]["InstanceId"]


def other_vpc_subnet(client) -> str:
    """A subnet of another VPC in the same account and zone."""
    vpc = client.create_vpc(CidrBlock="10.99.0.0/16")["Vpc"]["VpcId"]
    return client.create_subnet(VpcId=vpc, CidrBlock="10.99.0.0/24", AvailabilityZone=A)["Subnet"]["SubnetId"]


# -- options ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env, expected",
    [
        pytest.param(
            {"SUBNET_IDS": SUBNET, "VPC_ID": VPC},
            Ec2Options(subnet_ids=(SUBNET,), vpc_id=VPC),
            id="defaults",
        ),
        pytest.param(
            {
                "SUBNET_IDS": f" {SUBNET} , subnet-0123456789abcdef1,",
                "VPC_ID": f" {VPC} ",
                "LAUNCH_TEMPLATE_ID": TEMPLATE,
                "LAUNCH_TEMPLATE_VERSION": "7",
                "INSTANCE_TYPES": "m7g.large, c6gn.xlarge",
                "SPOT_SHARE": "0.25",
            },
            Ec2Options(
                subnet_ids=(SUBNET, "subnet-0123456789abcdef1"),
                vpc_id=VPC,
                launch_template_id=TEMPLATE,
                launch_template_version="7",
                instance_types=("m7g.large", "c6gn.xlarge"),
                spot_share=0.25,
            ),
            id="everything set",
        ),
        pytest.param(
            {"SUBNET_IDS": SUBNET, "VPC_ID": VPC, "LAUNCH_TEMPLATE_ID": " ", "INSTANCE_TYPES": "", "SPOT_SHARE": ""},
            Ec2Options(subnet_ids=(SUBNET,), vpc_id=VPC),
            id="blank values are absent",
        ),
        pytest.param(
            {"SUBNET_IDS": SUBNET, "VPC_ID": VPC, "LAUNCH_TEMPLATE_VERSION": "$Default", "SPOT_SHARE": "1"},
            Ec2Options(subnet_ids=(SUBNET,), vpc_id=VPC, launch_template_version="$Default", spot_share=1.0),
            id="default version, all spot",
        ),
    ],
)
def test_options_from_env(env, expected):
    assert Ec2Options.from_env(env) == expected


@pytest.mark.parametrize(
    "env, variable",
    [
        pytest.param({}, "SUBNET_IDS", id="subnets missing"),
        pytest.param({"SUBNET_IDS": " , "}, "SUBNET_IDS", id="subnets empty"),
        pytest.param({"SUBNET_IDS": "sub-123"}, "SUBNET_IDS", id="not a subnet id"),
        pytest.param({"SUBNET_IDS": f"{SUBNET},{SUBNET}"}, "SUBNET_IDS", id="subnet twice"),
        pytest.param({"SUBNET_IDS": SUBNET, "LAUNCH_TEMPLATE_ID": "worker"}, "LAUNCH_TEMPLATE_ID", id="template name"),
        pytest.param({"SUBNET_IDS": SUBNET, "LAUNCH_TEMPLATE_VERSION": "0"}, "LAUNCH_TEMPLATE_VERSION", id="version 0"),
        pytest.param(
            {"SUBNET_IDS": SUBNET, "LAUNCH_TEMPLATE_VERSION": "latest"}, "LAUNCH_TEMPLATE_VERSION", id="version word"
        ),
        pytest.param({"SUBNET_IDS": SUBNET, "INSTANCE_TYPES": "T3.Large"}, "INSTANCE_TYPES", id="type case"),
        pytest.param({"SUBNET_IDS": SUBNET, "INSTANCE_TYPES": "t3.large,t3.large"}, "INSTANCE_TYPES", id="type twice"),
        pytest.param({"SUBNET_IDS": SUBNET, "SPOT_SHARE": "1.5"}, "SPOT_SHARE", id="share above 1"),
        pytest.param({"SUBNET_IDS": SUBNET, "SPOT_SHARE": "-0.1"}, "SPOT_SHARE", id="share negative"),
        pytest.param({"SUBNET_IDS": SUBNET, "SPOT_SHARE": "half"}, "SPOT_SHARE", id="share not a number"),
        pytest.param({"SUBNET_IDS": SUBNET, "SPOT_SHARE": "nan"}, "SPOT_SHARE", id="share nan"),
        pytest.param({"SUBNET_IDS": SUBNET, "VPC_ID": " "}, "VPC_ID is required", id="vpc missing"),
        pytest.param({"SUBNET_IDS": SUBNET, "VPC_ID": "default"}, "VPC_ID", id="not a vpc id"),
    ],
)
def test_options_reject_bad_values_naming_the_variable(env, variable):
    with pytest.raises(ConfigError, match=variable):
        Ec2Options.from_env({"VPC_ID": VPC, **env})


@pytest.mark.parametrize(
    "share, count, spot",
    [(0.0, 5, 0), (1.0, 5, 5), (0.5, 1, 1), (0.5, 3, 2), (0.3, 3, 1), (0.1, 4, 0), (0.25, 0, 0)],
    ids=lambda v: str(v),
)
def test_spot_count_rounds_half_up(share, count, spot):
    assert Ec2Options(subnet_ids=(SUBNET,), vpc_id=VPC, spot_share=share).spot_count(count) == spot


# -- client and zones ------------------------------------------------------------------------------


def test_client_is_made_on_first_use_with_retries(aws_credentials):
    fleet = Ec2Fleet(Ec2Options(subnet_ids=(SUBNET,), vpc_id=VPC), CLUSTER)
    assert fleet._client is None  # nothing built at construction
    retries = fleet.client.meta.config.retries
    assert retries["mode"] in ("adaptive", "standard")
    assert retries["total_max_attempts"] >= 3


def test_zones_follow_subnet_order_and_are_looked_up_once(aws_ec2_client, aws_network):
    second_in_b = aws_ec2_client.create_subnet(VpcId=aws_network.vpc_id, CidrBlock="10.42.9.0/24", AvailabilityZone=B)
    subnets = (
        aws_network.subnets[C],
        aws_network.subnets[B],
        second_in_b["Subnet"]["SubnetId"],
        aws_network.subnets[A],
    )
    lookups = []
    aws_ec2_client.meta.events.register("before-call.ec2.DescribeSubnets", lambda **kw: lookups.append(1))
    fleet = fleet_for(aws_network, aws_ec2_client, subnets=subnets)

    assert fleet.zones() == (C, B, A)
    fleet.launch(B, 1, "cycle-1:b")
    assert fleet.zones() == (C, B, A)
    assert len(lookups) == 1


def test_unknown_subnet_is_a_config_error(aws_ec2_client, aws_network):
    fleet = fleet_for(aws_network, aws_ec2_client, subnets=(aws_network.subnets[A], SUBNET))
    with pytest.raises(ConfigError, match="SUBNET_IDS"):
        fleet.zones()


def test_a_subnet_outside_the_vpc_is_a_config_error(aws_ec2_client, aws_network):
    elsewhere = other_vpc_subnet(aws_ec2_client)
    fleet = fleet_for(aws_network, aws_ec2_client, subnets=(aws_network.subnets[A], elsewhere))
    with pytest.raises(ConfigError, match=f"outside VPC_ID.*{elsewhere}"):
        fleet.zones()


# -- launches --------------------------------------------------------------------------------------


def test_launch_goes_into_the_requested_zone(aws_ec2_client, aws_network, faults):
    fleet = fleet_for(aws_network, aws_ec2_client)
    before = time.time()

    in_b = fleet.launch(B, 2, "cycle-1:eu-west-1b")
    in_c = fleet.launch(C, 1, "cycle-1:eu-west-1c")

    assert len(in_b.instance_ids) == 2 and len(in_c.instance_ids) == 1
    assert in_b.failures == in_c.failures == ()
    workers = {i.id: i for i in fleet.list_workers()}
    assert {workers[i].az for i in in_b.instance_ids} == {B}
    assert {workers[i].az for i in in_c.instance_ids} == {C}
    assert all(w.instance_type == "t3.large" and w.lifecycle == "on-demand" for w in workers.values())
    assert all(w.state in (InstanceState.PENDING, InstanceState.RUNNING) for w in workers.values())
    assert all(before - 5 <= w.launched_at <= time.time() + 5 for w in workers.values())
    raw = aws_ec2_client.describe_instances(InstanceIds=list(in_b.instance_ids))["Reservations"]
    assert {i["SubnetId"] for r in raw for i in r["Instances"]} == {aws_network.subnets[B]}


FALLBACK_CASES = [
    pytest.param(
        0.0,
        {},
        {("t3.large", B, "on-demand"): 2},
        [],
        id="first choice has room",
    ),
    pytest.param(
        0.0,
        {("t3.large", B, None): "InsufficientInstanceCapacity"},
        {("m5.large", B, "on-demand"): 2},
        ["t3.large/eu-west-1b on-demand: InsufficientInstanceCapacity"],
        id="next type in the same zone",
    ),
    pytest.param(
        0.0,
        {(None, B, None): "InsufficientInstanceCapacity"},
        {("t3.large", A, "on-demand"): 2},
        [
            "t3.large/eu-west-1b on-demand: InsufficientInstanceCapacity",
            "m5.large/eu-west-1b on-demand: InsufficientInstanceCapacity",
        ],
        id="next zone when no type fits",
    ),
    pytest.param(
        0.0,
        {(None, B, None): "InsufficientInstanceCapacity", ("t3.large", A, None): "Unsupported"},
        {("m5.large", A, "on-demand"): 2},
        [
            "t3.large/eu-west-1b on-demand: InsufficientInstanceCapacity",
            "m5.large/eu-west-1b on-demand: InsufficientInstanceCapacity",
            "t3.large/eu-west-1a on-demand: Unsupported",
        ],
        id="types before zones in the next zone too",
    ),
    pytest.param(
        0.5,
        {},
        {("t3.large", B, "spot"): 1, ("t3.large", B, "on-demand"): 1},
        [],
        id="spot share splits the launch",
    ),
    pytest.param(
        1.0,
        {(None, None, "spot"): "SpotMaxPriceTooLow"},
        {("t3.large", B, "on-demand"): 2},
        [f"{t}/{z} spot: SpotMaxPriceTooLow" for z in (B, A, C) for t in TYPES],
        id="spot falls back to on-demand after every placement",
    ),
    pytest.param(
        1.0,
        {(None, None, "spot"): "MaxSpotInstanceCountExceeded"},
        {("t3.large", B, "on-demand"): 2},
        ["t3.large/eu-west-1b spot: MaxSpotInstanceCountExceeded"],
        id="spot limit goes straight to on-demand",
    ),
    pytest.param(
        1.0,
        {("t3.large", B, "spot"): "InsufficientInstanceCapacity"},
        {("m5.large", B, "spot"): 2},
        ["t3.large/eu-west-1b spot: InsufficientInstanceCapacity"],
        id="spot tries the next type first",
    ),
    pytest.param(
        0.0,
        {("t3.large", None, None): "VcpuLimitExceeded"},
        {("m5.large", B, "on-demand"): 2},
        ["t3.large/eu-west-1b on-demand: VcpuLimitExceeded"],
        id="a limit on one family moves to the next type",
    ),
    pytest.param(
        0.5,
        {(None, None, None): "InsufficientInstanceCapacity"},
        {},
        [f"{t}/{z} {m}: InsufficientInstanceCapacity" for m in ("spot", "on-demand") for z in (B, A, C) for t in TYPES],
        id="nothing anywhere",
    ),
]


@pytest.mark.parametrize("spot_share, rules, expected, failures", FALLBACK_CASES)
def test_capacity_fallback(aws_ec2_client, aws_network, faults, spot_share, rules, expected, failures):
    faults.rules.update(rules)
    fleet = fleet_for(aws_network, aws_ec2_client, spot_share=spot_share)

    result = fleet.launch(B, 2, "cycle-7:eu-west-1b")

    assert placements(fleet) == Counter(expected)
    assert len(result.instance_ids) == sum(expected.values())
    assert list(result.failures) == failures
    assert all(len(token) <= 64 for token in faults.client_tokens)
    assert len(set(faults.client_tokens)) == len(faults.client_tokens), "each attempt has its own ClientToken"


@pytest.mark.parametrize("code", sorted(CAPACITY_ERRORS))
def test_every_capacity_error_falls_back(aws_ec2_client, aws_network, faults, code):
    faults.rules[("t3.large", B, None)] = code
    fleet = fleet_for(aws_network, aws_ec2_client)

    result = fleet.launch(B, 1, "cycle-8:eu-west-1b")

    assert result.failures == (f"t3.large/eu-west-1b on-demand: {code}",)
    assert placements(fleet) == Counter({("m5.large", B, "on-demand"): 1})


@pytest.mark.parametrize("code", ["UnauthorizedOperation", "InvalidParameterValue", "InvalidLaunchTemplateId.NotFound"])
def test_other_errors_raise(aws_ec2_client, aws_network, faults, code):
    faults.rules[(None, None, None)] = code
    fleet = fleet_for(aws_network, aws_ec2_client)

    with pytest.raises(ClientError) as raised:
        fleet.launch(B, 1, "cycle-9:eu-west-1b")

    assert raised.value.response["Error"]["Code"] == code
    assert len(faults.calls) == 1, "no fallback on a non-capacity error"


def test_launch_needs_a_template_and_a_known_zone(aws_ec2_client, aws_network, faults):
    with pytest.raises(ConfigError, match="LAUNCH_TEMPLATE_ID"):
        fleet_for(aws_network, aws_ec2_client, template=False).launch(A, 1, "t:a")
    with pytest.raises(ValueError, match="us-east-1a"):
        fleet_for(aws_network, aws_ec2_client).launch("us-east-1a", 1, "t:x")
    assert fleet_for(aws_network, aws_ec2_client).launch(A, 0, "t:a").instance_ids == ()
    assert faults.calls == []


def test_same_token_launches_once(aws_ec2_client, aws_network, faults):
    fleet = fleet_for(aws_network, aws_ec2_client, spot_share=0.5)

    first = fleet.launch(A, 3, "cycle-3:eu-west-1a")
    calls = len(faults.calls)
    # A retried invocation builds its adapter afresh: nothing carries over but the tags in EC2.
    again = fleet_for(aws_network, aws_ec2_client, spot_share=0.5).launch(A, 3, "cycle-3:eu-west-1a")

    assert len(first.instance_ids) == 3
    assert sorted(again.instance_ids) == sorted(first.instance_ids)
    assert len(faults.calls) == calls, "the retry made no RunInstances call"
    assert len(fleet.list_workers()) == 3

    other = fleet.launch(A, 1, "cycle-4:eu-west-1a")
    assert set(other.instance_ids).isdisjoint(first.instance_ids)
    assert len(fleet.list_workers()) == 4


def test_client_tokens_are_stable_for_a_retried_launch(aws_ec2_client, aws_network, faults):
    """With EC2's own idempotency the same attempts carry the same ClientTokens when retried."""
    faults.rules[("t3.large", B, None)] = "InsufficientInstanceCapacity"
    fleet_for(aws_network, aws_ec2_client).launch(B, 1, "cycle-5:eu-west-1b")
    first = list(faults.client_tokens)
    for instance in fleet_for(aws_network, aws_ec2_client).list_workers():
        aws_ec2_client.terminate_instances(InstanceIds=[instance.id])  # so the tag lookup finds nothing
    faults.client_tokens.clear()

    fleet_for(aws_network, aws_ec2_client).launch(B, 1, "cycle-5:eu-west-1b")

    assert faults.client_tokens == first


def test_tags_on_create_mark_instances_and_volumes(aws_ec2_client, aws_network):
    fleet = fleet_for(aws_network, aws_ec2_client)
    (instance_id,) = fleet.launch(A, 1, "cycle-2:eu-west-1a").instance_ids
    expected = {
        CLUSTER_TAG: CLUSTER,
        ROLE_TAG: "worker",
        LAUNCH_TOKEN_TAG: "cycle-2:eu-west-1a",
        "Name": f"{CLUSTER}-worker",
    }

    assert tags_of(aws_ec2_client, instance_id).items() >= expected.items()
    volumes = aws_ec2_client.describe_volumes(Filters=[{"Name": "attachment.instance-id", "Values": [instance_id]}])
    assert volumes["Volumes"], "the instance has a root volume"
    for volume in volumes["Volumes"]:
        assert {t["Key"]: t["Value"] for t in volume["Tags"]}.items() >= expected.items()


# -- listing and terminating -----------------------------------------------------------------------


def test_only_this_clusters_workers_are_listed_terminated_ones_as_such(aws_ec2_client, aws_network):
    fleet = fleet_for(aws_network, aws_ec2_client)
    ours = set(fleet.launch(A, 2, "cycle-1:eu-west-1a").instance_ids)
    gone = fleet.launch(B, 1, "cycle-1:eu-west-1b").instance_ids[0]
    fleet.terminate(gone)
    run_foreign(aws_ec2_client, aws_network, {CLUSTER_TAG: CLUSTER, ROLE_TAG: "server"})
    run_foreign(aws_ec2_client, aws_network, {CLUSTER_TAG: "other", ROLE_TAG: "worker"})
    run_foreign(aws_ec2_client, aws_network, {ROLE_TAG: "worker"})
    run_foreign(aws_ec2_client, aws_network, {})
    worker_tags = {CLUSTER_TAG: CLUSTER, ROLE_TAG: "worker"}
    run_foreign(aws_ec2_client, aws_network, worker_tags, subnet=other_vpc_subnet(aws_ec2_client))

    listed = {i.id: i for i in fleet.list_workers()}
    assert set(listed) == ours | {gone}
    assert {i for i, x in listed.items() if x.alive} == ours
    assert listed[gone].state is InstanceState.TERMINATED


@pytest.mark.parametrize(
    "tags, other_vpc",
    [
        pytest.param({CLUSTER_TAG: CLUSTER, ROLE_TAG: "server"}, False, id="the server node"),
        pytest.param({CLUSTER_TAG: "other", ROLE_TAG: "worker"}, False, id="another cluster's worker"),
        pytest.param({CLUSTER_TAG: CLUSTER}, False, id="no role"),
        pytest.param({}, False, id="untagged"),
        pytest.param({CLUSTER_TAG: CLUSTER, ROLE_TAG: "worker"}, True, id="our tags in another VPC"),
    ],
)
def test_terminate_refuses_what_is_not_our_worker(aws_ec2_client, aws_network, tags, other_vpc):
    subnet = other_vpc_subnet(aws_ec2_client) if other_vpc else None
    instance_id = run_foreign(aws_ec2_client, aws_network, tags, subnet=subnet)
    calls = []
    aws_ec2_client.meta.events.register("before-call.ec2.TerminateInstances", lambda **kw: calls.append(1))
    fleet = fleet_for(aws_network, aws_ec2_client)

    with pytest.raises(NotOurInstance, match=instance_id):
        fleet.terminate(instance_id)

    assert calls == []
    state = aws_ec2_client.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]["State"]
    assert state["Name"] == "running"


def test_a_terminated_worker_listed_without_its_vpc_is_still_listed(aws_ec2_client, aws_network):
    """EC2 drops a terminated instance's network details (moto keeps them): its Node must still be cleaned up."""
    fleet = fleet_for(aws_network, aws_ec2_client)
    (instance_id,) = fleet.launch(A, 1, "cycle-1:eu-west-1a").instance_ids
    fleet.terminate(instance_id)

    def as_ec2_answers(parsed, **kwargs):
        for reservation in parsed.get("Reservations", ()):
            for raw in reservation["Instances"]:
                if raw["State"]["Name"] == "terminated":
                    for key in ("VpcId", "SubnetId", "PrivateIpAddress", "PrivateDnsName"):
                        raw.pop(key, None)

    aws_ec2_client.meta.events.register("after-call.ec2.DescribeInstances", as_ec2_answers)

    (worker,) = fleet.list_workers()
    assert (worker.id, worker.state, worker.private_ip) == (instance_id, InstanceState.TERMINATED, None)


def test_listed_workers_carry_their_private_address_and_dns_name(aws_ec2_client, aws_network):
    """So a Node whose providerID is K3s's default k3s://<hostname> can be matched to its instance."""
    fleet = fleet_for(aws_network, aws_ec2_client)
    (instance_id,) = fleet.launch(A, 1, "cycle-1:eu-west-1a").instance_ids
    raw = aws_ec2_client.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"][0]

    (worker,) = fleet.list_workers()

    assert worker.private_ip == raw["PrivateIpAddress"] and worker.private_ip.startswith("10.42.0.")
    assert worker.private_dns_name == raw["PrivateDnsName"] and worker.private_dns_name


def test_terminate_a_worker_and_again(aws_ec2_client, aws_network):
    fleet = fleet_for(aws_network, aws_ec2_client)
    (instance_id,) = fleet.launch(A, 1, "cycle-1:eu-west-1a").instance_ids
    calls = []
    aws_ec2_client.meta.events.register("before-call.ec2.TerminateInstances", lambda **kw: calls.append(1))

    fleet.terminate(instance_id)
    fleet.terminate(instance_id)  # already terminated: fine, and not asked twice
    fleet.terminate("i-0123456789abcdef0")  # unknown (long gone): fine

    assert calls == [1]
    assert [i.alive for i in fleet.list_workers()] == [False]


@pytest.mark.parametrize(
    "reason, expected",
    [
        pytest.param(None, "now", id="moto's own: User initiated (... UTC)"),
        pytest.param("User initiated (2026-12-05 01:02:03 GMT)", 1796432523.0, id="EC2's"),
        pytest.param("", None, id="empty"),
        pytest.param("Service initiated", None, id="no time"),
    ],
)
def test_a_stopped_worker_carries_when_it_was_stopped_where_ec2_says(aws_ec2_client, aws_network, reason, expected):
    """The warm pool terminates a worker stopped too long; a stop EC2 gives no time for has none."""
    fleet = fleet_for(aws_network, aws_ec2_client)
    (instance_id,) = fleet.launch(A, 1, "cycle-1:eu-west-1a").instance_ids
    before = time.time()
    fleet.stop(instance_id)

    def as_ec2_answers(parsed, **kwargs):
        for reservation in parsed.get("Reservations", ()):
            for raw in reservation["Instances"]:
                raw["StateTransitionReason"] = reason

    if reason is not None:
        aws_ec2_client.meta.events.register("after-call.ec2.DescribeInstances", as_ec2_answers)
    (worker,) = fleet.list_workers()

    assert worker.warm
    if expected == "now":
        assert before - 1 <= worker.stopped_at <= time.time()
    else:
        assert worker.stopped_at == expected


def test_a_started_worker_has_no_stop_time(aws_ec2_client, aws_network):
    fleet = fleet_for(aws_network, aws_ec2_client)
    (instance_id,) = fleet.launch(A, 1, "cycle-1:eu-west-1a").instance_ids
    fleet.stop(instance_id)
    fleet.start([instance_id])

    (worker,) = fleet.list_workers()

    assert worker.alive and worker.stopped_at is None
