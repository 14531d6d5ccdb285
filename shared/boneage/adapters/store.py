"""The results table: one item per upload, written with conditional writes so duplicates cannot double up.

``ResultStore`` is ``boneage.ports.ResultStore`` on DynamoDB. The flow only sees the typed
``StoredRecord`` (``boneage.upload``, which also draws the record's life cycle); the mapping between
it and the item lives here, and nowhere else.

- ``upload_id`` (partition key) is ``sha256(bucket/key/version)[:32]``: "this study".
- GSI ``by_hospital`` (``hospital_id``, ``created_at``): "this hospital's recent results"
  (``query_hospital``: typed pages, newest first, filtered, with an opaque token bound to the hospital).
- A claim holds a lease (``lease_until``) and a random ``claim`` token; ``finish`` only succeeds for the
  token holder, so two concurrent deliveries of one event never both write a result.
- GSI ``by_lease`` (``status``, ``lease_until``): "records still processing, oldest lease first". Sparse
  by construction: ``lease_until`` exists exactly while the status is ``processing`` (``claim`` sets it,
  ``finish`` rewrites the item without it, ``record_failure`` removes it), and DynamoDB indexes only the
  items that carry both keys, so the sweep queries the stuck records without a scan.
- ``notified_status`` records which status the notification went out for, so a redelivered event
  after a crash between the write and the publish sends the missing notification and nothing more.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import secrets
import types
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Union, get_args, get_origin, get_type_hints

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import BotoCoreError, ClientError

from boneage.adapters._errors import dependency, error_code
from boneage.result import FAILED, AssessmentResult
from boneage.upload import (
    PROCESSING,
    TERMINAL,
    UNKNOWN_HOSPITAL_ID,
    Claim,
    InvalidPageToken,
    RecordPage,
    RecordQuery,
    StoredRecord,
    Upload,
)

HOSPITAL_INDEX = "by_hospital"
LEASE_INDEX = "by_lease"

_ser = TypeSerializer()
_de = TypeDeserializer()
_RESULT_TYPES = get_type_hints(AssessmentResult)
# Item attribute -> StoredRecord field, for the record's own attributes; the result's fields sit flat
# beside them in the item under their own names.
_RECORD_ATTRIBUTES = {
    "upload_id": "upload_id", "hospital_id": "hospital_id", "status": "status", "attempts": "attempts",
    "report_keys": "report_keys", "notified_status": "notified_status", "notified_at": "notified_at",
    "notify_lease_until": "notify_lease_until", "lease_until": "lease_until", "created_at": "created_at",
    "updated_at": "updated_at", "source_bucket": "bucket", "source_key": "key", "source_version": "version_id",
}


def now_iso(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _to_dynamo(value: Any) -> Any:
    # DynamoDB numbers must be Decimal; a JSON round trip converts nested floats too.
    return json.loads(json.dumps(value), parse_float=Decimal)


def _marshal(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _ser.serialize(_to_dynamo(v)) for k, v in item.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, set):
        return sorted(_plain(v) for v in value)
    return value


def _unmarshal(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(_de.deserialize(v)) for k, v in item.items()}


def _typed(value: Any, hint: Any) -> Any:
    """``value`` as the result field's type says: DynamoDB gives a whole number back without its
    fraction (178.0 comes back as 178), which ``_plain`` reads as an int."""
    if value is None:
        return None
    origin, args = get_origin(hint), get_args(hint)
    if origin in (Union, types.UnionType):
        [hint] = [a for a in args if a is not type(None)]
        return _typed(value, hint)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if origin is list and args:
        return [_typed(v, args[0]) for v in value]
    if origin is dict and len(args) == 2:
        return {k: _typed(v, args[1]) for k, v in value.items()}
    return value


def _result_from_item(item: Mapping[str, Any]) -> AssessmentResult:
    values = {k: _typed(item[k], hint) for k, hint in _RESULT_TYPES.items() if k in item}
    values.setdefault("source", f"upload:{item.get('upload_id', '')}")     # the item keeps no source name
    values["status"] = item.get("status", FAILED)
    return AssessmentResult(**values)


def record_from_item(item: Mapping[str, Any]) -> StoredRecord:
    """The typed record of a plain (unmarshalled) item; ``result`` only once the status is terminal."""
    values = {field: item[name] for name, field in _RECORD_ATTRIBUTES.items() if item.get(name) is not None}
    values["upload_id"] = str(item["upload_id"])
    values["status"] = str(values.get("status", ""))
    values.setdefault("hospital_id", UNKNOWN_HOSPITAL_ID)
    values["report_keys"] = dict(values.get("report_keys") or {})
    result = _result_from_item(item) if values["status"] in TERMINAL else None
    return StoredRecord(result=result, **values)


# A filtered query may evaluate a page of items and keep none of them; this many round trips per page
# bound the work one request can cause (the token then resumes where the last one stopped).
_MAX_ROUND_TRIPS = 8
_TOKEN_FIELDS = ("upload_id", "hospital_id", "created_at")


def encode_page_token(last_key: Mapping[str, Any]) -> str:
    """DynamoDB's ``LastEvaluatedKey`` (on the GSI: the table key and the index key) as opaque text."""
    plain = {name: _de.deserialize(last_key[name]) for name in _TOKEN_FIELDS}
    raw = json.dumps(plain, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str, hospital_id: str) -> dict[str, Any]:
    """The ``ExclusiveStartKey`` a token stands for, if it was issued for ``hospital_id``.

    The key names its hospital, so a token handed to (or guessed by) another hospital is refused
    rather than used: ``ExclusiveStartKey`` only positions the query inside the caller's own
    partition anyway, but a token that is not the caller's is a client error worth saying so."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        plain = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidPageToken("the page token is not one this service issued") from exc
    if (not isinstance(plain, dict) or set(plain) != set(_TOKEN_FIELDS)
            or not all(isinstance(plain[k], str) and plain[k] for k in _TOKEN_FIELDS)):
        raise InvalidPageToken("the page token is not one this service issued")
    if plain["hospital_id"] != hospital_id:
        raise InvalidPageToken("the page token belongs to another query")
    return {k: {"S": v} for k, v in plain.items()}


def _item_from_record(record: StoredRecord) -> dict[str, Any]:
    """The plain item of a record: its attributes that are set, the result's fields flat beside them."""
    item: dict[str, Any] = {}
    if record.result is not None:
        item.update(record.result.as_dict())
        item.pop("source", None)        # "upload:<id>.ext": nothing the record does not already say
    for name, field in _RECORD_ATTRIBUTES.items():
        value = getattr(record, field)
        if value is not None:
            item[name] = dict(value) if name == "report_keys" else value
    return item


class ResultStore:
    """Conditional reads and writes of result items; every AWS error becomes a ``TransientFault``."""

    def __init__(self, dynamodb_client: Any, table_name: str) -> None:
        self._db = dynamodb_client
        self.table = table_name

    def get(self, upload_id: str) -> dict[str, Any] | None:
        with dependency("dynamodb"):
            resp = self._db.get_item(TableName=self.table, Key={"upload_id": {"S": upload_id}}, ConsistentRead=True)
        return _unmarshal(resp["Item"]) if "Item" in resp else None

    def read(self, upload_id: str) -> StoredRecord | None:
        """The typed record (``get`` gives the plain item, for printing)."""
        item = self.get(upload_id)
        return record_from_item(item) if item is not None else None

    def stuck(self, *, now: float, older_than_s: int, limit: int) -> list[StoredRecord]:
        """Records still ``processing`` whose lease ended more than ``older_than_s`` ago, oldest first
        (the sparse ``by_lease`` index: only processing records are in it)."""
        records: list[StoredRecord] = []
        kwargs: dict[str, Any] = {}
        while len(records) < limit:
            with dependency("dynamodb"):
                resp = self._db.query(
                    TableName=self.table, IndexName=LEASE_INDEX,
                    KeyConditionExpression="#status = :processing AND lease_until < :cutoff",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues=_marshal({":processing": PROCESSING,
                                                        ":cutoff": int(now) - older_than_s}),
                    Limit=limit - len(records), **kwargs)
            records += [record_from_item(_unmarshal(i)) for i in resp.get("Items", [])]
            if "LastEvaluatedKey" not in resp:
                break
            kwargs = {"ExclusiveStartKey": resp["LastEvaluatedKey"]}
        return records

    def claim(self, upload: Upload, hospital_id: str | None, *, now: float, lease_seconds: int) -> Claim:
        """Take the upload for this delivery unless another holds a live lease or it already finished."""
        token = secrets.token_hex(8)
        with dependency("dynamodb"):
            try:
                resp = self._db.update_item(
                    TableName=self.table,
                    Key={"upload_id": {"S": upload.upload_id}},
                    UpdateExpression=(
                        "SET #status = :processing, #claim = :token, lease_until = :lease, updated_at = :now_iso, "
                        "attempts = if_not_exists(attempts, :zero) + :one, "
                        "created_at = if_not_exists(created_at, :now_iso), hospital_id = :hospital, "
                        "source_bucket = :bucket, source_key = :key, source_version = :version"
                    ),
                    ConditionExpression=(
                        "attribute_not_exists(upload_id) OR #status = :failed "
                        "OR (#status = :processing AND lease_until < :now)"
                    ),
                    ExpressionAttributeNames={"#status": "status", "#claim": "claim"},
                    ExpressionAttributeValues=_marshal({
                        ":processing": PROCESSING, ":failed": FAILED, ":token": token,
                        ":lease": int(now) + lease_seconds, ":now": int(now), ":now_iso": now_iso(now),
                        ":zero": 0, ":one": 1, ":hospital": hospital_id or UNKNOWN_HOSPITAL_ID,
                        ":bucket": upload.bucket, ":key": upload.key, ":version": upload.version_id or "null",
                    }),
                    ReturnValues="ALL_NEW",
                )
                return Claim(owned=True, record=record_from_item(_unmarshal(resp["Attributes"])), token=token)
            except ClientError as exc:
                if error_code(exc) != "ConditionalCheckFailedException":
                    raise
        existing = self.get(upload.upload_id)
        if existing is None:        # deleted between the two calls: let the retry sort it out
            return self.claim(upload, hospital_id, now=now, lease_seconds=lease_seconds)
        return Claim(owned=False, record=record_from_item(existing))

    def finish(self, claim: Claim, result: AssessmentResult, *, now: float,
               report_keys: Mapping[str, str] | None = None, notify_lease_seconds: int = 0) -> StoredRecord | None:
        """Write the terminal result if we still hold the claim; None when another delivery took over.

        With ``notify_lease_seconds`` the same write also takes the notification lease (what
        ``claim_notification`` would take next), saving a round trip: a duplicate that finds the
        record finished but not yet notified then leaves the publishing to us."""
        notify_lease_until = (int(now) + notify_lease_seconds if notify_lease_seconds
                              else claim.record.notify_lease_until)
        item = _item_from_record(dataclasses.replace(
            claim.record, status=result.status, result=result, updated_at=now_iso(now),
            report_keys=dict(report_keys or {}), lease_until=None, notify_lease_until=notify_lease_until))
        with dependency("dynamodb"):
            try:
                self._db.put_item(
                    TableName=self.table, Item=_marshal(item),
                    ConditionExpression="#claim = :token",
                    ExpressionAttributeNames={"#claim": "claim"},
                    ExpressionAttributeValues={":token": {"S": claim.token}},
                )
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    return None
                raise
        return record_from_item(item)

    def record_failure(self, upload: Upload, hospital_id: str | None, *, fault: str, now: float,
                       model_version: str = "") -> StoredRecord | None:
        """Mark an upload ``failed`` after its retries ran out; never overwrites a completed/rejected result."""
        with dependency("dynamodb"):
            try:
                resp = self._db.update_item(
                    TableName=self.table,
                    Key={"upload_id": {"S": upload.upload_id}},
                    UpdateExpression=(
                        "SET #status = :failed, reason = :reason, message = :message, updated_at = :now_iso, "
                        "created_at = if_not_exists(created_at, :now_iso), hospital_id = :hospital, "
                        "attempts = if_not_exists(attempts, :zero), model_version = :model_version, "
                        "source_bucket = :bucket, source_key = :key, source_version = :version "
                        "REMOVE #claim, lease_until"
                    ),
                    # Never overwrites a result, nor a live claim of a delivery that may still succeed.
                    ConditionExpression=(
                        "attribute_not_exists(upload_id) OR #status = :failed "
                        "OR (#status = :processing AND (attribute_not_exists(lease_until) OR lease_until < :now))"
                    ),
                    ExpressionAttributeNames={"#status": "status", "#claim": "claim"},
                    ExpressionAttributeValues=_marshal({
                        ":failed": FAILED, ":processing": PROCESSING, ":reason": "processing_failed", ":now": int(now),
                        ":message": f"assessment failed after retries ({fault}); the upload can be redriven",
                        ":now_iso": now_iso(now), ":hospital": hospital_id or UNKNOWN_HOSPITAL_ID, ":zero": 0,
                        ":model_version": model_version,
                        ":bucket": upload.bucket, ":key": upload.key, ":version": upload.version_id or "null",
                    }),
                    ReturnValues="ALL_NEW",
                )
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    return None
                raise
        return record_from_item(_unmarshal(resp["Attributes"]))

    def release(self, claim: Claim) -> None:
        """Best effort: end our lease after a fault so the retry can claim at once (a crash leaves it to expire)."""
        try:
            self._db.update_item(
                TableName=self.table,
                Key={"upload_id": {"S": claim.record.upload_id}},
                UpdateExpression="SET lease_until = :zero",
                ConditionExpression="#claim = :token",
                ExpressionAttributeNames={"#claim": "claim"},
                ExpressionAttributeValues={":zero": {"N": "0"}, ":token": {"S": claim.token}},
            )
        except (ClientError, BotoCoreError):
            pass

    def claim_notification(self, upload_id: str, status: str, *, now: float, lease_seconds: int) -> bool:
        """Take the right to publish ``status`` for this upload; False if it went out or another delivery
        is publishing it now. Two deliveries that both see a finished, un-notified record (the finisher
        and a duplicate) would otherwise both publish."""
        with dependency("dynamodb"):
            try:
                self._db.update_item(
                    TableName=self.table,
                    Key={"upload_id": {"S": upload_id}},
                    UpdateExpression="SET notify_lease_until = :lease",
                    ConditionExpression=(
                        "#status = :status AND (attribute_not_exists(notified_status) OR notified_status <> :status) "
                        "AND (attribute_not_exists(notify_lease_until) OR notify_lease_until < :now)"
                    ),
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues=_marshal({":status": status, ":now": int(now),
                                                        ":lease": int(now) + lease_seconds}),
                )
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    return False
                raise
        return True

    def release_notification(self, upload_id: str) -> None:
        """Best effort: after a failed publish, let the retry publish at once instead of after the lease."""
        try:
            self._db.update_item(TableName=self.table, Key={"upload_id": {"S": upload_id}},
                                 UpdateExpression="SET notify_lease_until = :zero",
                                 ExpressionAttributeValues={":zero": {"N": "0"}})
        except (ClientError, BotoCoreError):
            pass

    def mark_notified(self, upload_id: str, status: str, *, now: float) -> bool:
        """Remember the notification went out for ``status``; False if the record moved on meanwhile."""
        with dependency("dynamodb"):
            try:
                self._db.update_item(
                    TableName=self.table,
                    Key={"upload_id": {"S": upload_id}},
                    UpdateExpression="SET notified_status = :status, notified_at = :now_iso REMOVE notify_lease_until",
                    ConditionExpression="#status = :status",
                    ExpressionAttributeNames={"#status": "status"},
                    ExpressionAttributeValues=_marshal({":status": status, ":now_iso": now_iso(now)}),
                )
            except ClientError as exc:
                if error_code(exc) == "ConditionalCheckFailedException":
                    return False
                raise
        return True

    def query_hospital(self, hospital_id: str, query: RecordQuery | None = None,
                       page_token: str | None = None) -> RecordPage:
        """One page of the hospital's records, newest first, filtered; ``next_token`` resumes after it.

        The date range is part of the key condition (``created_at`` is the index's sort key); status
        and interpretation are filters, so a page can hold fewer than ``limit`` records while more
        follow. Raises ``InvalidPageToken`` for a token that is malformed or another hospital's."""
        query = query or RecordQuery()
        names = {"#h": "hospital_id"}
        values: dict[str, Any] = {":h": hospital_id}
        key_condition = "#h = :h"
        if query.created_from or query.created_to:
            names["#c"] = "created_at"
            if query.created_from and query.created_to:
                key_condition += " AND #c BETWEEN :from AND :to"
                values.update({":from": query.created_from, ":to": query.created_to})
            elif query.created_from:
                key_condition += " AND #c >= :from"
                values[":from"] = query.created_from
            else:
                key_condition += " AND #c <= :to"
                values[":to"] = query.created_to
        filters = []
        for attribute, wanted in (("status", query.statuses), ("interpretation", query.interpretations)):
            if wanted:
                names[f"#{attribute}"] = attribute
                placeholders = []
                for i, value in enumerate(sorted(wanted)):
                    values[f":{attribute}{i}"] = value
                    placeholders.append(f":{attribute}{i}")
                filters.append(f"#{attribute} IN ({', '.join(placeholders)})")
        request: dict[str, Any] = {
            "TableName": self.table, "IndexName": HOSPITAL_INDEX, "ScanIndexForward": False,
            "KeyConditionExpression": key_condition, "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": _marshal(values),
        }
        if filters:
            request["FilterExpression"] = " AND ".join(filters)
        start = decode_page_token(page_token, hospital_id) if page_token else None
        records: list[StoredRecord] = []
        for _ in range(_MAX_ROUND_TRIPS):
            # Never ask for more than the page still has room for, so the last evaluated key is
            # exactly where the next page starts and no record is skipped or repeated.
            extra = {"ExclusiveStartKey": start} if start else {}
            with dependency("dynamodb"):
                resp = self._db.query(**request, Limit=query.limit - len(records), **extra)
            records.extend(record_from_item(_unmarshal(i)) for i in resp.get("Items", []))
            start = resp.get("LastEvaluatedKey")
            if start is None or len(records) >= query.limit:
                break
        return RecordPage(records=records, next_token=encode_page_token(start) if start else None)

    def recent_for_hospital(self, hospital_id: str, limit: int = 20) -> list[dict[str, Any]]:
        """The hospital's latest results, newest first (the GSI answers it without a scan)."""
        with dependency("dynamodb"):
            resp = self._db.query(
                TableName=self.table, IndexName=HOSPITAL_INDEX,
                KeyConditionExpression="hospital_id = :h",
                ExpressionAttributeValues={":h": {"S": hospital_id}},
                ScanIndexForward=False, Limit=limit,
            )
        return [_unmarshal(i) for i in resp.get("Items", [])]
