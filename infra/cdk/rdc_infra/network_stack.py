"""The VPC: public subnets for the NAT, private subnets for compute, isolated subnets for data."""

from __future__ import annotations

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_logs as logs
from constructs import Construct

from .config import InfraConfig

HTTPS = ec2.Port.tcp(443)

# Subnet group names; other stacks select subnets by these.
PUBLIC = "Public"
COMPUTE = "Compute"
DATA = "Data"


def deny_default_egress(security_group: ec2.SecurityGroup) -> None:
    """Make CloudFormation drop the default allow-all egress rule of a group whose egress goes only
    to other security groups.

    CloudFormation removes that default only when the group has an *inline* egress rule. Rules to
    another security group are always separate resources, and CDK drops its own match-nothing
    placeholder as soon as any egress rule is added, so such a group (the API Lambda, RDS Proxy)
    would silently keep allow-all. The placeholder is forced back as a raw override; call this
    only on groups with no inline egress rules of their own, since the override replaces them.
    """
    security_group.node.default_child.add_property_override(
        "SecurityGroupEgress",
        [
            {
                "CidrIp": "255.255.255.255/32",
                "Description": "Disallow all traffic",
                "IpProtocol": "icmp",
                "FromPort": 252,
                "ToPort": 86,
            }
        ],
    )


class NetworkStack(Stack):
    """Two AZs, one NAT (by default) for the collector's way out to Rithmic, and VPC endpoints.

    Interface endpoints carry the traffic a NAT would otherwise bill per GB (image pulls, logs,
    secrets); their security group admits nobody until a compute stack calls `allow_endpoints`.
    """

    def __init__(self, scope: Construct, construct_id: str, *, config: InfraConfig, **kwargs) -> None:
        super().__init__(scope, construct_id, **kwargs)

        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            ip_addresses=ec2.IpAddresses.cidr("10.40.0.0/16"),
            max_azs=2,
            nat_gateways=config.nat_gateways,
            subnet_configuration=[
                ec2.SubnetConfiguration(name=PUBLIC, subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24),
                ec2.SubnetConfiguration(name=COMPUTE, subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS, cidr_mask=22),
                ec2.SubnetConfiguration(name=DATA, subnet_type=ec2.SubnetType.PRIVATE_ISOLATED, cidr_mask=24),
            ],
        )
        # Rejected flows only: enough to debug a security group, a fraction of the log volume.
        self.vpc.add_flow_log(
            "RejectedFlows",
            traffic_type=ec2.FlowLogTrafficType.REJECT,
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(
                logs.LogGroup(self, "FlowLogGroup", retention=config.log_retention)
            ),
        )

        # `aws ecs run-task` for the migration needs these (see infra/cdk/README.md).
        CfnOutput(
            self,
            "ComputeSubnets",
            value=",".join(self.vpc.select_subnets(subnet_group_name=COMPUTE).subnet_ids),
        )

        # S3 (image layers from ECR, archives) costs nothing through a gateway endpoint.
        self.vpc.add_gateway_endpoint(
            "S3Endpoint",
            service=ec2.GatewayVpcEndpointAwsService.S3,
            subnets=[
                ec2.SubnetSelection(subnet_group_name=COMPUTE),
                ec2.SubnetSelection(subnet_group_name=DATA),
            ],
        )

        self.endpoint_security_group: ec2.ISecurityGroup | None = None
        if config.interface_endpoints:
            self.endpoint_security_group = ec2.SecurityGroup(
                self,
                "EndpointSecurityGroup",
                vpc=self.vpc,
                description="Interface VPC endpoints; HTTPS from the collector and the API only",
                allow_all_outbound=False,
            )
            for name, service in (
                ("SecretsManager", ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER),
                ("EcrApi", ec2.InterfaceVpcEndpointAwsService.ECR),
                ("EcrDocker", ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER),
                ("Logs", ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS),
            ):
                self.vpc.add_interface_endpoint(
                    f"{name}Endpoint",
                    service=service,
                    subnets=ec2.SubnetSelection(subnet_group_name=COMPUTE),
                    security_groups=[self.endpoint_security_group],
                    # Ingress is granted per client security group, not to the whole VPC CIDR.
                    open=False,
                    private_dns_enabled=True,
                )

    def allow_endpoints(self, client: ec2.IConnectable, description: str) -> None:
        """Let `client` reach the AWS APIs: the interface endpoints if any, else the NAT on 443."""
        if self.endpoint_security_group is not None:
            # allow_to puts the ingress rule in the client's stack, so this stack never depends on it.
            client.connections.allow_to(self.endpoint_security_group, HTTPS, description)
        else:
            client.connections.allow_to(ec2.Peer.any_ipv4(), HTTPS, description)
