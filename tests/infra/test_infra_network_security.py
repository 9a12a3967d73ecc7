"""The VPC layout and the security-group and IAM rules across every stack."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.infra

ANYWHERE = {"0.0.0.0/0", "::/0"}
NO_TRAFFIC = {"CidrIp": "255.255.255.255/32", "IpProtocol": "icmp", "FromPort": 252, "ToPort": 86}


def test_vpc_spans_two_azs_with_public_private_and_isolated_subnets(synth, templates):
    network = templates["RdcNetwork"]
    network.resource_count_is("AWS::EC2::VPC", 1)
    network.resource_count_is("AWS::EC2::Subnet", 6)
    network.resource_count_is("AWS::EC2::NatGateway", 1)
    subnets = synth.resources("RdcNetwork", "AWS::EC2::Subnet").values()
    kinds = sorted(
        next(t["Value"] for t in s["Properties"]["Tags"] if t["Key"] == "aws-cdk:subnet-type") for s in subnets
    )
    assert kinds == ["Isolated", "Isolated", "Private", "Private", "Public", "Public"]
    azs = {json.dumps(s["Properties"]["AvailabilityZone"]) for s in subnets}
    assert len(azs) == 2
    # Isolated subnets have no route to the internet at all.
    routes = synth.resources("RdcNetwork", "AWS::EC2::Route")
    assert not [k for k in routes if k.startswith("VpcData")]


def test_endpoints_cover_secrets_ecr_logs_and_s3(synth, templates):
    network = templates["RdcNetwork"]
    endpoints = synth.resources("RdcNetwork", "AWS::EC2::VPCEndpoint").values()
    services = sorted(json.dumps(e["Properties"]["ServiceName"]) for e in endpoints)
    for name in ("secretsmanager", "ecr.api", "ecr.dkr", "logs", "s3"):
        assert any(f".{name}" in s for s in services), (name, services)
    network.resource_count_is("AWS::EC2::VPCEndpoint", 5)
    network.has_resource_properties(
        "AWS::EC2::VPCEndpoint", {"VpcEndpointType": "Interface", "PrivateDnsEnabled": True}
    )
    network.has_resource_properties("AWS::EC2::VPCEndpoint", {"VpcEndpointType": "Gateway"})


def test_rejected_flows_are_logged(templates):
    templates["RdcNetwork"].has_resource_properties(
        "AWS::EC2::FlowLog", {"TrafficType": "REJECT", "LogDestinationType": "cloud-watch-logs"}
    )


def _all_ingress(synth):
    for stack, body in synth.templates.items():
        for logical_id, resource in body["Resources"].items():
            if resource["Type"] == "AWS::EC2::SecurityGroup":
                for rule in resource["Properties"].get("SecurityGroupIngress", []):
                    yield stack, logical_id, rule
            elif resource["Type"] == "AWS::EC2::SecurityGroupIngress":
                yield stack, logical_id, resource["Properties"]


def test_no_ingress_from_anywhere(synth):
    for stack, logical_id, rule in _all_ingress(synth):
        assert rule.get("CidrIp") not in ANYWHERE and rule.get("CidrIpv6") not in ANYWHERE, (stack, logical_id)
        # Every ingress path is from a named security group, never a CIDR.
        assert "SourceSecurityGroupId" in rule, (stack, logical_id, rule)


def test_ingress_paths_are_exactly_the_architecture(synth):
    """DB <- collector, archive task, proxy; proxy <- API; Redis <- collector, API; endpoints <- collector,
    archive task, API."""
    paths = set()
    for _stack, _logical_id, rule in _all_ingress(synth):
        target = json.dumps(rule["GroupId"])
        source = json.dumps(rule["SourceSecurityGroupId"])
        name = lambda ref: next(  # noqa: E731
            n for n in ("Database", "Proxy", "Redis", "Endpoint", "Collector", "ApiFunction", "Archive") if n in ref
        )
        paths.add((name(source), name(target), rule.get("FromPort") if isinstance(rule.get("FromPort"), int) else "db"))
    assert paths == {
        ("Collector", "Database", 5432),
        ("Archive", "Database", 5432),
        ("Proxy", "Database", "db"),
        ("ApiFunction", "Proxy", 5432),
        ("Collector", "Redis", 6380),
        ("ApiFunction", "Redis", 6380),
        ("Collector", "Endpoint", 443),
        ("Archive", "Endpoint", 443),
        ("ApiFunction", "Endpoint", 443),
    }


def test_no_security_group_keeps_the_default_allow_all_egress(synth):
    """CloudFormation keeps allow-all egress unless a group has an inline egress rule."""
    for stack, body in synth.templates.items():
        for logical_id, resource in body["Resources"].items():
            if resource["Type"] != "AWS::EC2::SecurityGroup":
                continue
            egress = resource["Properties"].get("SecurityGroupEgress")
            assert egress, (stack, logical_id)
            for rule in egress:
                if rule.get("CidrIp") == "0.0.0.0/0":
                    # Only the collector (Rithmic's wss) and the archive task (S3, whose gateway endpoint routes
                    # to S3's public addresses) go out, and only on 443.
                    assert logical_id.startswith(("CollectorSecurityGroup", "ArchiveSecurityGroup")), logical_id
                    assert (rule["IpProtocol"], rule["FromPort"], rule["ToPort"]) == ("tcp", 443, 443)
    # Groups whose egress goes only to other groups carry the match-nothing placeholder inline.
    for stack, type_prefix in (("RdcApi", "ApiFunctionSecurityGroup"), ("RdcData", "ProxySecurityGroup")):
        (group,) = (
            v for k, v in synth.resources(stack, "AWS::EC2::SecurityGroup").items() if k.startswith(type_prefix)
        )
        (rule,) = group["Properties"]["SecurityGroupEgress"]
        assert NO_TRAFFIC.items() <= rule.items()


def test_without_interface_endpoints_the_lambda_gets_https_out(synth_variant):
    assert len(synth_variant.resources("RdcNetwork", "AWS::EC2::VPCEndpoint")) == 1  # S3 gateway only
    (api_sg,) = synth_variant.resources("RdcApi", "AWS::EC2::SecurityGroup").values()
    assert {"CidrIp": "0.0.0.0/0", "IpProtocol": "tcp", "FromPort": 443, "ToPort": 443}.items() <= (
        api_sg["Properties"]["SecurityGroupEgress"][0].items()
    )


def _policy_statements(synth):
    for stack, body in synth.templates.items():
        for logical_id, resource in body["Resources"].items():
            if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
                for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
                    yield stack, logical_id, statement
            if resource["Type"] == "AWS::IAM::Role":
                for policy in resource["Properties"].get("Policies", []):
                    for statement in policy["PolicyDocument"]["Statement"]:
                        yield stack, logical_id, statement


def test_no_wildcard_actions_anywhere(synth):
    for stack, logical_id, statement in _policy_statements(synth):
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        for action in actions:
            assert action != "*" and not action.endswith(":*"), (stack, logical_id, action)


def test_data_resources_are_never_granted_on_resource_star(synth):
    data_prefixes = ("s3:", "secretsmanager:", "rds", "elasticache:", "kms:")
    for stack, logical_id, statement in _policy_statements(synth):
        if statement.get("Resource") != "*":
            continue
        actions = statement.get("Action", [])
        actions = [actions] if isinstance(actions, str) else actions
        for action in actions:
            assert not action.startswith(data_prefixes), (stack, logical_id, action)
