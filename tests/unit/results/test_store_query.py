"""``ResultStore.query_hospital`` on moto: newest first, filters, and page tokens bound to a hospital."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws

from boneage.adapters.store import ResultStore, now_iso
from boneage.result import COMPLETED, REJECTED
from boneage.upload import InvalidPageToken, RecordQuery

from .support import T0, create_table, seed


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch) -> Iterator[ResultStore]:
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        create_table(ddb)
        yield ResultStore(ddb, "results")


def _all_pages(store: ResultStore, hospital: str, query: RecordQuery) -> list[list[str]]:
    pages, token = [], None
    while True:
        page = store.query_hospital(hospital, query, token)
        pages.append([r.upload_id for r in page.records])
        token = page.next_token
        if token is None:
            return pages


def test_pages_hold_every_record_once_newest_first(store: ResultStore) -> None:
    records = [seed(store, "st-mary", i, now=T0 + 60 * i) for i in range(7)]
    seed(store, "north-gen", 99, now=T0)
    pages = _all_pages(store, "st-mary", RecordQuery(limit=3))
    flat = [u for p in pages for u in p]
    assert flat == [r.upload_id for r in reversed(records)]
    assert [len(p) for p in pages][:2] == [3, 3]


def test_filters_by_status_interpretation_and_date_range(store: ResultStore) -> None:
    seed(store, "st-mary", 0, now=T0, interpretation="delayed", sds=-2.5)
    seed(store, "st-mary", 1, now=T0 + 86400, status=REJECTED)
    seed(store, "st-mary", 2, now=T0 + 2 * 86400, interpretation="advanced", sds=2.4)
    seed(store, "st-mary", 3, now=T0 + 3 * 86400)

    def ids(query: RecordQuery) -> list[str]:
        return [r.key.rsplit("/", 1)[1] for p in [store.query_hospital("st-mary", query)] for r in p.records]

    assert ids(RecordQuery(statuses=frozenset({REJECTED}))) == ["study-1.dcm"]
    assert ids(RecordQuery(statuses=frozenset({COMPLETED}), interpretations=frozenset({"delayed", "advanced"}))) \
        == ["study-2.dcm", "study-0.dcm"]
    window = RecordQuery(created_from=now_iso(T0 + 86400), created_to=now_iso(T0 + 2 * 86400 + 10))
    assert ids(window) == ["study-2.dcm", "study-1.dcm"]
    assert ids(RecordQuery(created_from=now_iso(T0 + 3 * 86400))) == ["study-3.dcm"]
    assert ids(RecordQuery(created_to=now_iso(T0 + 1))) == ["study-0.dcm"]


def test_a_filtered_query_pages_through_sparse_matches(store: ResultStore) -> None:
    # Two matches among twenty: pages of 1 must still find both, each once, through the token.
    for i in range(20):
        seed(store, "st-mary", i, now=T0 + i, interpretation="delayed" if i in (3, 17) else "within_normal_limits")
    pages = _all_pages(store, "st-mary", RecordQuery(interpretations=frozenset({"delayed"}), limit=1))
    flat = [u for p in pages for u in p]
    assert len(flat) == 2 and len(set(flat)) == 2


def test_records_are_typed_with_their_result(store: ResultStore) -> None:
    seed(store, "st-mary", 1, now=T0)
    [record] = store.query_hospital("st-mary").records
    assert record.hospital_id == "st-mary" and record.status == COMPLETED
    assert record.result is not None and record.result.bone_age_months == 127.0
    assert record.result.bone_age_interval_months == [115.0, 139.0]


def test_a_token_cannot_be_replayed_by_another_hospital(store: ResultStore) -> None:
    for i in range(3):
        seed(store, "st-mary", i, now=T0 + i)
    token = store.query_hospital("st-mary", RecordQuery(limit=1)).next_token
    assert token
    with pytest.raises(InvalidPageToken):
        store.query_hospital("north-gen", RecordQuery(limit=1), token)


@pytest.mark.parametrize("token", ["not base64 !", "e30", "W10", "eyJ1cGxvYWRfaWQiOjF9"])
def test_a_malformed_token_is_refused(store: ResultStore, token: str) -> None:
    with pytest.raises(InvalidPageToken):
        store.query_hospital("st-mary", RecordQuery(), token)


def test_page_size_is_bounded() -> None:
    with pytest.raises(ValueError):
        RecordQuery(limit=0)
    with pytest.raises(ValueError):
        RecordQuery(limit=101)
