"""The Powertools Logger, Metrics and Tracer of the API (registered as Chalice middleware in app.py)."""

from __future__ import annotations

import warnings

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit

from .config import SERVICE, metrics_namespace

logger = Logger(service=SERVICE, utc=True)
metrics = Metrics(service=SERVICE, namespace=metrics_namespace())
tracer = Tracer(service=SERVICE)

# Most requests add no metric (only errors and rows served do); that is not worth a warning each.
warnings.filterwarnings("ignore", message="No application metrics to publish")

__all__ = ["logger", "metrics", "tracer", "MetricUnit"]
