"""The gateway's configuration file: what it must name, what it defaults, what it refuses."""

from __future__ import annotations

import json

import pytest

from boneage.gateway.config import ConfigError, GatewayConfig

from .conftest import config_dict


def test_a_full_file_loads_with_its_spool_relative_to_the_file(tmp_path):
    path = tmp_path / "gateway.json"
    path.write_text(json.dumps(config_dict("spool", stow_url="http://pacs:8042/dicom-web/studies")))
    config = GatewayConfig.load(path)
    assert config.spool_dir == tmp_path / "spool"
    assert config.upload_prefix == "incoming/st-mary/"
    assert config.allowed_calling_aets == ("MODALITY", "PACS")
    assert config.pacs is not None and config.pacs.ae_title == "PACS"
    assert config.retry.max_delivery_attempts == 3 and config.retry.initial_backoff_s == 0.01
    assert config.aws.wait_time_s == 20 and config.aws.endpoint_url is None


def test_retry_defaults_wait_out_a_three_day_outage_and_give_up_on_three_refusals(tmp_path):
    raw = config_dict(tmp_path)
    del raw["retry"]
    retry = GatewayConfig.from_dict(raw).retry
    assert (retry.max_delivery_age_s, retry.max_delivery_attempts, retry.max_backoff_s) == (72 * 3600, 3, 300)
    raw["retry"] = {"max_delivery_age_s": 3600, "max_delivery_attempts": 5}
    retry = GatewayConfig.from_dict(raw).retry
    assert (retry.max_delivery_age_s, retry.max_delivery_attempts) == (3600, 5)
    with pytest.raises(ConfigError, match="max_delivery_age_s"):
        GatewayConfig.from_dict({**raw, "retry": {"max_delivery_age_s": -1}})


def test_an_empty_allowed_calling_aet_list_is_refused_not_read_as_anyone(tmp_path):
    with pytest.raises(ConfigError, match="allowed_calling_aets"):
        GatewayConfig.from_dict(config_dict(tmp_path, allowed_calling_aets=[]))


@pytest.mark.parametrize("field, value, message", [
    ("hospital_id", "../other", "hospital_id"),
    ("ae_title", "A" * 17, "ae_title"),
    ("ae_title", "BAD\\AE", "ae_title"),
    ("listen_port", 70000, "listen_port"),
    ("stow_url", "ftp://pacs", "stow_url"),
    ("retry", {"initial_backoff_s": 10, "max_backoff_s": 1}, "max_backoff_s"),
    ("aws", {"upload_bucket": "b", "results_bucket": "r"}, "results_queue_url"),
])
def test_a_wrong_field_is_named_in_the_error(tmp_path, field, value, message):
    with pytest.raises(ConfigError, match=message):
        GatewayConfig.from_dict(config_dict(tmp_path, **{field: value}))


def test_a_missing_or_broken_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        GatewayConfig.load(tmp_path / "nope.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not JSON"):
        GatewayConfig.load(tmp_path / "bad.json")
