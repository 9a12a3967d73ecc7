"""The context-to-settings layer: cdk.json is complete and bad values fail at synth with a hint."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.infra


def test_cdk_json_defines_every_setting():
    from infra.cdk.app import default_context
    from infra.cdk.rdc_infra.config import InfraConfig

    config = InfraConfig.from_context(default_context())
    assert config.symbol_list == ["ESZ6", "NQZ6"]
    assert config.alarm_email == ""


def test_strings_from_the_command_line_are_coerced():
    from infra.cdk.app import default_context
    from infra.cdk.rdc_infra.config import InfraConfig

    context = {**default_context(), "rdc:db_multi_az": "true", "rdc:nat_gateways": "2"}
    config = InfraConfig.from_context(context)
    assert config.db_multi_az is True and config.nat_gateways == 2


@pytest.mark.parametrize(
    ("key", "value", "hint"),
    [
        ("rdc:log_retention_days", 31, "use one of"),
        ("rdc:db_multi_az", "maybe", "true or false"),
        ("rdc:collector_cpu", "lots", "integer"),
    ],
)
def test_bad_values_say_what_to_do(key, value, hint):
    from infra.cdk.app import default_context
    from infra.cdk.rdc_infra.config import ConfigError, InfraConfig

    with pytest.raises(ConfigError, match=hint):
        InfraConfig.from_context({**default_context(), key: value})


def test_missing_key_names_the_file():
    from infra.cdk.app import default_context
    from infra.cdk.rdc_infra.config import ConfigError, InfraConfig

    context = default_context()
    del context["rdc:symbols"]
    with pytest.raises(ConfigError, match="cdk.json"):
        InfraConfig.from_context(context)


def test_rearm_schedule_is_minutes_after_the_open():
    from infra.cdk.rdc_infra.monitoring_stack import _minutes_later

    assert _minutes_later("cron(0 17 ? * SUN-THU *)", 10) == "cron(10 17 ? * SUN-THU *)"
    with pytest.raises(ValueError, match="round hour"):
        _minutes_later("cron(55 17 ? * SUN-THU *)", 10)
