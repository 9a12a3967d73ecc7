"""The deployment's settings, read once from CDK context by `app.py` and passed to every stack.

Defaults live in `infra/cdk/cdk.json`; override any of them with `cdk deploy -c rdc:<key>=<value>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from aws_cdk import aws_logs as logs

CONTEXT_PREFIX = "rdc:"

# CloudWatch Logs accepts only these retention periods; a typo in cdk.json should fail at synth,
# not at deploy time.
_RETENTION = {
    1: logs.RetentionDays.ONE_DAY,
    3: logs.RetentionDays.THREE_DAYS,
    5: logs.RetentionDays.FIVE_DAYS,
    7: logs.RetentionDays.ONE_WEEK,
    14: logs.RetentionDays.TWO_WEEKS,
    30: logs.RetentionDays.ONE_MONTH,
    60: logs.RetentionDays.TWO_MONTHS,
    90: logs.RetentionDays.THREE_MONTHS,
    120: logs.RetentionDays.FOUR_MONTHS,
    150: logs.RetentionDays.FIVE_MONTHS,
    180: logs.RetentionDays.SIX_MONTHS,
    365: logs.RetentionDays.ONE_YEAR,
    400: logs.RetentionDays.THIRTEEN_MONTHS,
    545: logs.RetentionDays.EIGHTEEN_MONTHS,
    731: logs.RetentionDays.TWO_YEARS,
}


class ConfigError(ValueError):
    """A context value in cdk.json (or -c) is missing or malformed."""


@dataclass(frozen=True)
class InfraConfig:
    """Every tunable of the deployment. Field names match the context keys without `rdc:`."""

    # Paths are relative to the repository root.
    chalice_dir: str
    collector_image_dir: str
    collector_dockerfile: str

    symbols: str
    # A pair: the test gateway offers `Rithmic Test`; a production gateway and its system name come
    # from Rithmic after conformance, as does the exact application name to present.
    rithmic_url: str
    rithmic_system_name: str
    rithmic_app_name: str
    rithmic_app_version: str

    nat_gateways: int
    interface_endpoints: bool

    db_instance_type: str
    db_allocated_storage_gib: int
    db_max_allocated_storage_gib: int
    db_multi_az: bool
    db_backup_retention_days: int
    db_name: str

    redis_node_type: str
    redis_replicas: int

    collector_cpu: int
    collector_memory_mib: int

    lambda_memory_mib: int
    lambda_timeout_seconds: int
    api_throttle_rate_limit: int
    api_throttle_burst_limit: int
    api_quota_per_day: int
    waf_rate_limit_per_5min: int

    log_retention_days: int
    alarm_email: str
    market_timezone: str
    market_open_cron: str
    market_close_cron: str
    db_free_storage_alarm_gib: int

    # The Parquet archive: the key prefix in the data stack's bucket, when the archive task runs (EventBridge
    # Scheduler cron in market_timezone), the Glue database and Athena workgroup name, and the days each
    # table stays in PostgreSQL (0 = forever).
    archive_prefix: str
    archive_cron: str
    archive_catalog_name: str
    retention_days_ticks: int
    retention_days_quotes: int
    retention_days_level2: int

    @classmethod
    def from_context(cls, context: Mapping[str, Any]) -> InfraConfig:
        """Build from a mapping of `rdc:<field>` keys; values given as strings (-c) are coerced."""
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = CONTEXT_PREFIX + f.name
            if key not in context:
                raise ConfigError(f"CDK context {key!r} is not set; add it to infra/cdk/cdk.json.")
            values[f.name] = _coerce(key, context[key], f.type)
        config = cls(**values)
        config.log_retention  # noqa: B018 - validate early
        return config

    @property
    def log_retention(self) -> logs.RetentionDays:
        try:
            return _RETENTION[self.log_retention_days]
        except KeyError:
            allowed = ", ".join(str(d) for d in _RETENTION)
            raise ConfigError(
                f"rdc:log_retention_days={self.log_retention_days} is not a CloudWatch Logs "
                f"retention; use one of {allowed}."
            ) from None

    @property
    def symbol_list(self) -> list[str]:
        return [s.strip().upper() for s in self.symbols.split(",") if s.strip()]


def _coerce(key: str, value: Any, type_name: str) -> Any:
    if type_name == "bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "1", "yes"):
            return True
        if str(value).lower() in ("false", "0", "no", ""):
            return False
        raise ConfigError(f"CDK context {key!r} must be true or false, not {value!r}.")
    if type_name == "int":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"CDK context {key!r} must be an integer, not {value!r}.") from None
    return "" if value is None else str(value)
