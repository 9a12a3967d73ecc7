"""Deployment code for RithmicDataCollector; `infra.cdk` holds the AWS CDK app."""
