"""The uploader registry on SSM (``boneage.adapters.registry``): parsing, the cache, faults.

Against botocore's Stubber (no network): each expected SSM call is queued, so a call the cache should
have saved, or a missing one, fails the test. On the emulator it runs inside
``tests/integration/test_hospital_isolation.py``.
"""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from boneage.adapters.registry import UploaderRegistry, parse_principals
from boneage.errors import TransientFault
from boneage.fakes import FakeClock


@pytest.fixture
def ssm():
    client = boto3.session.Session(region_name="us-east-1", aws_access_key_id="x",
                                   aws_secret_access_key="x").client("ssm")
    with Stubber(client) as stub:
        yield client, stub


def _answer(stub: Stubber, name: str, value: str) -> None:
    stub.add_response("get_parameter", {"Parameter": {"Name": name, "Value": value, "Type": "String"}},
                      {"Name": name})


def test_the_value_is_a_comma_separated_list_of_unique_ids():
    assert parse_principals(" AROA1 ,AIDA2,, ") == frozenset({"AROA1", "AIDA2"})
    assert parse_principals("") == frozenset()


def test_an_entry_is_cached_for_its_ttl_and_fresh_bypasses_the_cache(ssm):
    client, stub = ssm
    clock = FakeClock(0.0)
    registry = UploaderRegistry(client, "/boneage/hospitals/", ttl_s=60, clock=clock)
    _answer(stub, "/boneage/hospitals/st-mary", "AROA1")
    assert registry.principals("st-mary") == {"AROA1"}
    clock.advance(59)
    assert registry.principals("st-mary") == {"AROA1"}          # no second call queued: cached
    _answer(stub, "/boneage/hospitals/st-mary", "AROA2")
    assert registry.principals("st-mary", fresh=True) == {"AROA2"}
    clock.advance(61)
    _answer(stub, "/boneage/hospitals/st-mary", "AROA3")
    assert registry.principals("st-mary") == {"AROA3"}
    stub.assert_no_pending_responses()


def test_a_hospital_not_onboarded_is_none_and_never_cached(ssm):
    client, stub = ssm
    registry = UploaderRegistry(client, "/boneage/hospitals/")
    stub.add_client_error("get_parameter", "ParameterNotFound", expected_params={"Name": "/boneage/hospitals/new"})
    assert registry.principals("new") is None
    _answer(stub, "/boneage/hospitals/new", "AROANEW")           # onboarded a moment later: found at once
    assert registry.principals("new") == {"AROANEW"}
    stub.assert_no_pending_responses()


def test_any_other_error_is_a_fault_not_a_verdict(ssm):
    client, stub = ssm
    registry = UploaderRegistry(client, "/boneage/hospitals/")
    stub.add_client_error("get_parameter", "ThrottlingException")
    with pytest.raises(TransientFault, match="ssm unavailable: ThrottlingException"):
        registry.principals("st-mary")


def test_the_prefix_must_be_a_path():
    with pytest.raises(ValueError):
        UploaderRegistry(object(), "boneage/hospitals")
