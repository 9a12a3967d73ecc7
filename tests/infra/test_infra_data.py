"""The stateful stack: PostgreSQL, RDS Proxy, Redis, the archive bucket and the secrets."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match

pytestmark = pytest.mark.infra

# Changing any of these would make CloudFormation replace the resource: a new, empty database.
PINNED = {
    "RdcDatabase": "AWS::RDS::DBInstance",
    "RdcDatabaseSecret": "AWS::SecretsManager::Secret",
    "RdcApiDatabaseSecret": "AWS::SecretsManager::Secret",
    "RdcRedis": "AWS::ElastiCache::ReplicationGroup",
    "RdcRedisAuthSecret": "AWS::SecretsManager::Secret",
    "RdcArchiveBucket": "AWS::S3::Bucket",
    "RdcAthenaResultsBucket": "AWS::S3::Bucket",
    "RdcRithmicSecret": "AWS::SecretsManager::Secret",
    "RdcApiKeysSecret": "AWS::SecretsManager::Secret",
}


def test_data_stack_has_termination_protection(synth):
    assert synth.manifest["artifacts"]["RdcData"]["properties"]["terminationProtection"] is True
    for other in ("RdcNetwork", "RdcCollector", "RdcApi", "RdcMonitoring"):
        assert not synth.manifest["artifacts"][other]["properties"].get("terminationProtection")


def test_stateful_logical_ids_are_pinned(synth):
    resources = synth.templates["RdcData"]["Resources"]
    for logical_id, type_name in PINNED.items():
        assert resources[logical_id]["Type"] == type_name, logical_id
    assert len(synth.resources("RdcData", "AWS::RDS::DBInstance")) == 1
    assert len(synth.resources("RdcData", "AWS::ElastiCache::ReplicationGroup")) == 1
    assert len(synth.resources("RdcData", "AWS::S3::Bucket")) == 2  # the archive, Athena's results
    assert len(synth.resources("RdcData", "AWS::SecretsManager::Secret")) == 5


def test_stateful_resources_survive_stack_deletion(synth):
    resources = synth.templates["RdcData"]["Resources"]
    assert resources["RdcDatabase"]["DeletionPolicy"] == "Snapshot"
    for logical_id in ("RdcArchiveBucket", "RdcDatabaseSecret", "RdcRithmicSecret", "RdcApiKeysSecret"):
        assert resources[logical_id]["DeletionPolicy"] == "Retain", logical_id


def test_postgres_16_encrypted_isolated_with_backups(synth, templates):
    data = templates["RdcData"]
    data.has_resource_properties(
        "AWS::RDS::DBInstance",
        {
            "Engine": "postgres",
            "EngineVersion": Match.string_like_regexp(r"^16\."),
            "StorageEncrypted": True,
            "PubliclyAccessible": False,
            "DeletionProtection": True,
            "BackupRetentionPeriod": 7,
            "MultiAZ": False,
            "DBInstanceClass": "db.t4g.micro",
            # The password is never in the template: it is resolved from the generated secret.
            "MasterUserPassword": {
                "Fn::Join": ["", ["{{resolve:secretsmanager:", {"Ref": "RdcDatabaseSecret"}, Match.any_value()]]
            },
        },
    )
    data.has_resource_properties(
        "AWS::RDS::DBParameterGroup", {"Family": "postgres16", "Parameters": {"rds.force_ssl": "1"}}
    )
    data.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {
            "GenerateSecretString": Match.object_like(
                {"GenerateStringKey": "password", "SecretStringTemplate": '{"username":"rdc_admin"}'}
            )
        },
    )
    (subnet_group,) = synth.resources("RdcData", "AWS::RDS::DBSubnetGroup").values()
    assert all("VpcDataSubnet" in json.dumps(s) for s in subnet_group["Properties"]["SubnetIds"])


def test_rds_proxy_requires_tls_and_serves_admin_and_api_logins(synth, templates):
    templates["RdcData"].has_resource_properties(
        "AWS::RDS::DBProxy",
        {
            "EngineFamily": "POSTGRESQL",
            "RequireTLS": True,
            "Auth": [
                Match.object_like(
                    {
                        "AuthScheme": "SECRETS",
                        "SecretArn": {"Ref": Match.string_like_regexp("^DatabaseSecretAttachment")},
                    }
                ),
                Match.object_like(
                    {
                        "AuthScheme": "SECRETS",
                        "SecretArn": {"Ref": Match.string_like_regexp("^ApiDatabaseSecretAttachment")},
                    }
                ),
            ],
        },
    )
    (proxy,) = synth.resources("RdcData", "AWS::RDS::DBProxy").values()
    assert all("VpcDataSubnet" in json.dumps(s) for s in proxy["Properties"]["VpcSubnetIds"])
    assert proxy["Properties"]["DBProxyName"] == "rdcdata-proxy"
    templates["RdcData"].has_resource_properties(
        "AWS::SecretsManager::Secret",
        {"GenerateSecretString": Match.object_like({"SecretStringTemplate": '{"username":"rdc_api"}'})},
    )


def test_redis_encrypted_with_auth_in_isolated_subnets(synth, templates):
    templates["RdcData"].has_resource_properties(
        "AWS::ElastiCache::ReplicationGroup",
        {
            "Engine": "redis",
            "AtRestEncryptionEnabled": True,
            "TransitEncryptionEnabled": True,
            "Port": 6380,
            "AuthToken": {
                "Fn::Join": ["", ["{{resolve:secretsmanager:", {"Ref": "RdcRedisAuthSecret"}, ":SecretString:::}}"]]
            },
        },
    )
    (subnets,) = synth.resources("RdcData", "AWS::ElastiCache::SubnetGroup").values()
    assert all("VpcDataSubnet" in json.dumps(s) for s in subnets["Properties"]["SubnetIds"])


def test_archive_bucket_is_encrypted_private_and_tls_only(templates):
    data = templates["RdcData"]
    data.has_resource_properties(
        "AWS::S3::Bucket",
        {
            "BucketEncryption": {
                "ServerSideEncryptionConfiguration": [{"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
            "PublicAccessBlockConfiguration": {
                "BlockPublicAcls": True,
                "BlockPublicPolicy": True,
                "IgnorePublicAcls": True,
                "RestrictPublicBuckets": True,
            },
        },
    )
    data.has_resource_properties(
        "AWS::S3::BucketPolicy",
        {
            "PolicyDocument": {
                "Statement": Match.array_with(
                    [
                        Match.object_like(
                            {
                                "Effect": "Deny",
                                "Action": "s3:*",
                                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                            }
                        )
                    ]
                )
            }
        },
    )


def test_no_physical_names_are_hard_coded(synth):
    named = {
        "AWS::S3::Bucket": "BucketName",
        "AWS::SecretsManager::Secret": "Name",
        "AWS::RDS::DBInstance": "DBInstanceIdentifier",
        "AWS::ElastiCache::ReplicationGroup": "ReplicationGroupId",
        "AWS::Logs::LogGroup": "LogGroupName",
        "AWS::ECS::Cluster": "ClusterName",
        "AWS::SNS::Topic": "TopicName",
    }
    for stack, body in synth.templates.items():
        for logical_id, resource in body["Resources"].items():
            prop = named.get(resource["Type"])
            if prop:
                assert prop not in resource.get("Properties", {}), (stack, logical_id, prop)


def test_multi_az_variant_has_standby_and_replica(synth_variant):
    (db,) = synth_variant.resources("RdcData", "AWS::RDS::DBInstance").values()
    assert db["Properties"]["MultiAZ"] is True
    (redis,) = synth_variant.resources("RdcData", "AWS::ElastiCache::ReplicationGroup").values()
    assert redis["Properties"]["NumCacheClusters"] == 2
    assert redis["Properties"]["MultiAZEnabled"] is True
    assert redis["Properties"]["AutomaticFailoverEnabled"] is True
