"""The store's races, run on a DynamoDB that applies conditions atomically (dynalite), round after round.

Every guarantee of ``ResultStore`` against duplicate deliveries (one owner per claim, only the owner
finishes, one publisher per notification, a give-up or a redrive never overwriting a result) rests on
DynamoDB checking a write's condition and making the write in one step. moto does not: it checks,
then writes, and concurrent writes interleave, so the concurrency tests that pass on moto prove
nothing about the conditions. dynalite locks the item across the check and the write, as DynamoDB
does (``dynalite_server.py``).

Each race starts ``DELIVERIES`` deliveries of one upload together (threads released by a barrier,
each with its own boto3 client, as separate Lambda invocations have) and checks what a correct store
allows; ``ROUNDS`` rounds, each on a fresh upload. Run on moto, the same races went wrong in this many
of 25 rounds (moto 5.2.5, measured for issue 14):

    race           moto server (HTTP, threaded)   moto in-process (mock_aws)
    claim          9                              21
    finish         11                             22
    notification   5                              11
    redrive        12                             19
    use case       8-9                            23

The rarest, 5 in 25, still fails one of 40 rounds with probability 1 - 0.8 ** 40 > 0.9998 (the claim
race: 1 - 0.64 ** 40, all but 2e-8), and the five races together miss a non-atomic store with
probability below 1e-20. ``test_the_races_catch_a_store_that_checks_then_writes`` keeps the harness
honest: the same races on the same adapter, over a client that checks each condition against a read
and writes afterwards (moto's flaw, reproduced on dynalite), fail in every round (they did in 10 of 10
rounds each even with no pause between the check and the write; the test keeps 10 ms).

The port contract's store assertions (``tests/unit/handler/test_port_contracts.py``) run here on
dynalite as well, and one test pins what DynamoDB does to whole numbers (178.0 comes back as 178):
the typed record, its JSON and the notification built from it stay what they were when written.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from boneage.adapters.store import ResultStore
from boneage.config import Settings
from boneage.fakes import FakeAssessmentService, InMemoryObjects, InMemoryReports, RecordingPublisher
from boneage.notification import build_message
from boneage.processor import DUPLICATE, InProgress, UploadProcessor
from boneage.result import AssessmentResult
from boneage.devstack.stack import load_template
from boneage.upload import Upload
from tests.unit.handler import test_port_contracts as contracts

from .dynalite_server import client, create_table, missing, running

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

DELIVERIES = 8
ROUNDS = 40
TABLE = "boneage-results"
SCRATCH = "boneage-results-scratch"
BUCKET = "in-bucket"
T = 1_700_000_000.0
LEASE = 60

Problems = list[str]        # what a round saw that a correct store does not allow; [] when it was right


# -- dynalite ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    if why := missing():
        pytest.fail(why, pytrace=False)
    with running() as url:
        db = client(url)
        template = load_template()
        create_table(db, TABLE, template)
        create_table(db, SCRATCH, template)
        yield url


@pytest.fixture(scope="module")
def stores(endpoint: str) -> list[ResultStore]:
    """One store per delivery, each on its own client."""
    return [ResultStore(client(endpoint), TABLE) for _ in range(DELIVERIES)]


@pytest.fixture(scope="module")
def racy_stores(endpoint: str) -> list[ResultStore]:
    """The same adapter over clients whose conditional writes are not atomic."""
    return [ResultStore(CheckThenWrite(client(endpoint), SCRATCH), TABLE) for _ in range(DELIVERIES)]


class CheckThenWrite:
    """A DynamoDB client that applies conditions as moto does: it checks the condition against the item as
    it read it, then writes unconditionally, after a pause in which other writes may land.

    The check is DynamoDB's own (dynalite's): the write is tried, with its condition, on a copy of the
    item in a scratch table; so the expressions need no second implementation here."""

    def __init__(self, db: Any, scratch_table: str, pause_s: float = 0.01) -> None:
        self._db, self._scratch, self._pause_s = db, scratch_table, pause_s

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    def update_item(self, **request: Any) -> Any:
        return self._write("update_item", request, request["Key"])

    def put_item(self, **request: Any) -> Any:
        return self._write("put_item", request, {"upload_id": request["Item"]["upload_id"]})

    def _write(self, operation: str, request: dict[str, Any], key: dict[str, Any]) -> Any:
        write = getattr(self._db, operation)
        if "ConditionExpression" not in request:
            return write(**request)
        copy = {"upload_id": {"S": uuid.uuid4().hex}}
        seen = self._db.get_item(TableName=request["TableName"], Key=key, ConsistentRead=True).get("Item")
        if seen is not None:
            self._db.put_item(TableName=self._scratch, Item={**seen, **copy})
        check = {**request, "TableName": self._scratch}
        if operation == "update_item":
            check["Key"] = copy
        else:
            check["Item"] = {**request["Item"], **copy}
        write(**check)                  # ConditionalCheckFailedException here, as from the table
        time.sleep(self._pause_s)
        return write(**_without_condition(request))


def _without_condition(request: dict[str, Any]) -> dict[str, Any]:
    """The request less its condition, and less the names and values only the condition used (DynamoDB
    refuses unused ones)."""
    request = {k: v for k, v in request.items() if k != "ConditionExpression"}
    used = request.get("UpdateExpression", "")
    for field in ("ExpressionAttributeNames", "ExpressionAttributeValues"):
        kept = {k: v for k, v in request.pop(field, {}).items() if re.search(re.escape(k) + r"(?!\w)", used)}
        if kept:
            request[field] = kept
    return request


# -- the race harness -------------------------------------------------------------------------------
_POOL = ThreadPoolExecutor(DELIVERIES)


def race(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run the calls at once, one thread each, released together; their results (or exceptions) in order."""
    assert len(calls) <= DELIVERIES, "more calls than threads would never pass the barrier"
    barrier = threading.Barrier(len(calls), timeout=30)

    def together(call: Callable[[], Any]) -> Any:
        barrier.wait()
        try:
            return call()
        except Exception as exc:            # a round that raises is a problem of the round, reported
            return exc

    return [f.result() for f in [_POOL.submit(together, call) for call in calls]]


def _raised(outcomes: Sequence[Any]) -> Problems:
    return [f"raised {type(o).__name__}: {o}" for o in outcomes if isinstance(o, Exception)]


def _upload() -> Upload:
    return Upload(BUCKET, f"incoming/st-mary/{uuid.uuid4().hex}.png", "v1")


def _result(model_version: str) -> AssessmentResult:
    return AssessmentResult(source="upload:x.png", status="completed", bone_age_months=178.0,
                            bone_age_interval_months=[169.0, 187.5], sex="M", interpretation="within_normal_limits",
                            model_version=model_version, report_files=["report.png"])


def claim_race(stores: Sequence[ResultStore]) -> Problems:
    """All deliveries claim a new upload at once: exactly one owns it, and the record counts one attempt."""
    upload = _upload()
    claims = race([lambda s=s: s.claim(upload, "st-mary", now=T, lease_seconds=LEASE) for s in stores])
    if problems := _raised(claims):
        return problems
    owners = [c for c in claims if c.owned]
    record = stores[0].read(upload.upload_id)
    problems = [f"{len(owners)} owners"] if len(owners) != 1 else []
    if record is None or record.attempts != 1:
        problems.append(f"record {record and record.status} counts {record and record.attempts} attempts")
    return problems


def finish_race(stores: Sequence[ResultStore]) -> Problems:
    """The owner finishes just after its lease ran out while the others take the claim over: either the
    finish lands and no takeover does, or one takeover does and the finish is refused. Then every
    delivery that believes it owns the upload finishes: one completed record, written by the one owner."""
    upload = _upload()
    first = stores[0].claim(upload, "st-mary", now=T, lease_seconds=LEASE)
    late = T + LEASE + 1
    outcomes = race([lambda: stores[0].finish(first, _result("owner-0"), now=late)]
                    + [lambda s=s: s.claim(upload, "st-mary", now=late, lease_seconds=LEASE) for s in stores[1:]])
    if problems := _raised(outcomes):
        return problems
    finished, claims = outcomes[0], outcomes[1:]
    owners = [i for i, c in enumerate(claims, 1) if c.owned]
    winners = ([0] if finished is not None else []) + owners
    if len(winners) != 1:
        return [f"{len(winners)} owners: finish {'landed' if finished else 'refused'}, {len(owners)} takeovers"]
    [winner] = winners
    # Every delivery holding a claim finishes (the first one again, as its retry would): only the owner lands.
    finishes = race([lambda: stores[0].finish(first, _result("owner-0"), now=late + 1)]
                    + [lambda i=i: stores[i].finish(claims[i - 1], _result(f"owner-{i}"), now=late + 1)
                       for i in owners])
    if problems := _raised(finishes):
        return problems
    landed = [i for i, f in zip([0, *owners], finishes, strict=True) if f is not None]
    record = stores[0].read(upload.upload_id)
    problems = [] if landed == owners else [f"finishes by {landed}, owner {owners}"]
    by = record and record.result and record.result.model_version
    if record is None or (record.status, by) != ("completed", f"owner-{winner}"):
        problems.append(f"record {record and record.status} by {by}, owner {winner}")
    return problems


def notification_race(stores: Sequence[ResultStore]) -> Problems:
    """All deliveries see one finished, un-notified record and try to publish: exactly one may; when its
    notification lease runs out unused, again exactly one; once it went out, none."""
    upload = _upload()
    claim = stores[0].claim(upload, "st-mary", now=T, lease_seconds=LEASE)
    stores[0].finish(claim, _result("m"), now=T + 1)
    problems: Problems = []
    for now, expected in ((T + 2, 1), (T + 2 + LEASE + 1, 1)):
        taken = race([lambda s=s, now=now: s.claim_notification(upload.upload_id, "completed", now=now,
                                                                lease_seconds=LEASE) for s in stores])
        wrong = [f"{sum(taken)} publishers at +{now - T:.0f} s"] if sum(taken) != expected else []
        problems += _raised(taken) or wrong
    stores[0].mark_notified(upload.upload_id, "completed", now=T + 100)
    taken = race([lambda s=s: s.claim_notification(upload.upload_id, "completed", now=T + 1000, lease_seconds=LEASE)
                  for s in stores])
    return problems + (_raised(taken) or ([f"{sum(taken)} publishers after it went out"] if any(taken) else []))


def redrive_race(stores: Sequence[ResultStore]) -> Problems:
    """The owner finishes late, while deliveries on their last attempt record ``failed`` and redeliveries
    (or the redrive) claim: either the finish lands and nothing else does, or one claim owns the upload
    (after any number of ``failed`` writes). The owner then finishes: one terminal record, and neither a
    give-up nor a claim changes it afterwards."""
    upload = _upload()
    first = stores[0].claim(upload, "st-mary", now=T, lease_seconds=LEASE)
    late = T + LEASE + 1
    givers, claimers = stores[1:4], stores[4:]
    outcomes = race([lambda: stores[0].finish(first, _result("owner-0"), now=late)]
                    + [lambda s=s: s.record_failure(upload, "st-mary", fault="RuntimeError", now=late) for s in givers]
                    + [lambda s=s: s.claim(upload, "st-mary", now=late, lease_seconds=LEASE) for s in claimers])
    if problems := _raised(outcomes):
        return problems
    finished, failures, claims = outcomes[0], outcomes[1:4], outcomes[4:]
    owners = [c for c in claims if c.owned]
    gave_up = sum(f is not None for f in failures)
    record = stores[0].read(upload.upload_id)
    status = record and record.status
    if finished is not None:
        if owners or gave_up or status != "completed":
            return [f"the finish landed, and so did {len(owners)} claims and {gave_up} failures; record {status}"]
    elif len(owners) != 1 or status != "processing":
        return [f"the finish was refused; {len(owners)} claims and {gave_up} failures landed; record {status}"]
    else:
        [owner] = owners
        if stores[4].finish(owner, _result("redriven"), now=late + 1) is None:
            return ["the claim's owner could not finish"]
    after = race([lambda s=s: s.record_failure(upload, "st-mary", fault="RuntimeError", now=late + 1000)
                  for s in givers] + [lambda s=s: s.claim(upload, "st-mary", now=late + 1000, lease_seconds=LEASE)
                                      for s in claimers])
    if problems := _raised(after):
        return problems
    final = stores[0].read(upload.upload_id)
    overwrote = sum(f is not None for f in after[:3]) + sum(c.owned for c in after[3:])
    problems = [f"{overwrote} give-ups or claims landed on the result"] if overwrote else []
    if final is None or final.status != "completed":
        problems.append(f"final record {final and final.status}")
    return problems


RACES = {"claim": claim_race, "finish": finish_race, "notification": notification_race, "redrive": redrive_race}


def _rounds(check: Callable[[], Problems], rounds: int) -> dict[int, Problems]:
    """The rounds that went wrong, with what went wrong."""
    return {n: problems for n in range(rounds) if (problems := check())}


@pytest.mark.parametrize("name", list(RACES))
def test_eight_concurrent_deliveries_keep_the_store_guarantees_in_every_round(
        name: str, stores: list[ResultStore]) -> None:
    assert _rounds(lambda: RACES[name](stores), ROUNDS) == {}


# -- the whole use case -----------------------------------------------------------------------------
def deliver_together(stores: Sequence[ResultStore]) -> Problems:
    """The upload use case, each delivery with its own store (and client) and the other ports shared; a
    delivery told ``InProgress`` is retried, as SQS would, until the first one is done."""
    objects, reports, publisher = InMemoryObjects(), InMemoryReports(), RecordingPublisher()
    service = FakeAssessmentService()
    key = f"incoming/st-mary/{uuid.uuid4().hex}.png"
    upload = Upload(BUCKET, key, objects.put(BUCKET, key, b"IMG boy", {"sex": "M"}))
    settings = Settings(results_table=TABLE, lease_seconds=LEASE, max_receive_count=3)

    def deliver(store: ResultStore) -> str:
        processor = UploadProcessor(settings=settings, objects=objects, service=service, store=store,
                                    reports=reports, publisher=publisher)
        deadline, attempt = time.monotonic() + 30, 1
        while time.monotonic() < deadline:
            try:
                return processor.process(upload, attempt=attempt).outcome
            except InProgress:
                attempt = 2             # never the last attempt: that one would record `failed`
                time.sleep(0.02)
        return "still in progress"

    outcomes = race([lambda s=s: deliver(s) for s in stores])
    if problems := _raised(outcomes):
        return problems
    record = stores[0].read(upload.upload_id)
    problems = [] if sorted(outcomes) == ["completed"] + [DUPLICATE] * (len(stores) - 1) else [f"outcomes {outcomes}"]
    if len(service.calls) != 1:
        problems.append(f"assessed {len(service.calls)} times")
    if len(publisher.messages) != 1:
        problems.append(f"{len(publisher.messages)} notifications")
    if record is None or (record.status, record.attempts, record.notified) != ("completed", 1, True):
        problems.append(f"record {record}")
    return problems


def test_eight_concurrent_deliveries_of_one_upload_write_one_record_and_one_notification_in_every_round(
        stores: list[ResultStore]) -> None:
    assert _rounds(lambda: deliver_together(stores), ROUNDS) == {}


# -- the harness itself -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", [*RACES, "use case"])
def test_the_races_catch_a_store_that_checks_then_writes(name: str, racy_stores: list[ResultStore]) -> None:
    """Without atomic conditions every race goes wrong, so the rounds above would fail on such a store."""
    check = RACES.get(name, deliver_together)
    rounds = 4
    failed = _rounds(lambda: check(racy_stores), rounds)
    assert len(failed) == rounds, f"only {len(failed)} of {rounds} rounds caught the non-atomic store: {failed}"


# -- the store's contract --------------------------------------------------------------------------
STORE_CONTRACTS = [f for name, f in vars(contracts).items()
                   if name.startswith("test_") and "store" in inspect.signature(f).parameters]


@pytest.mark.parametrize("contract", STORE_CONTRACTS, ids=lambda f: f.__name__.removeprefix("test_")[:60])
def test_the_store_contract_holds_on_dynalite(contract: Callable[[Any], None], endpoint: str) -> None:
    """The port contract's sequential assertions (fake and moto in ``test_port_contracts.py``) on the strict
    implementation too, each on a table of its own: the contract's uploads are fixed."""
    table = f"contract-{uuid.uuid4().hex[:12]}"
    create_table(client(endpoint), table, load_template())
    contract(ResultStore(client(endpoint), table))


# -- numbers ----------------------------------------------------------------------------------------
def test_whole_numbers_come_back_from_dynamodb_as_the_floats_written_and_the_notification_is_unchanged(
        stores: list[ResultStore]) -> None:
    """DynamoDB returns 178.0 as 178 (dynalite too, unlike moto); what the record, its JSON and the
    notification carry must not change with it."""
    store, upload = stores[0], _upload()
    written = dataclasses.replace(_result("m-1"), chronological_age_months=126.0, sds=0.0,
                                  hand_box=[10.0, 20.0, 200.0, 250.0], timings_ms={"model": 12.0})
    claim = store.claim(upload, "st-mary", now=T, lease_seconds=LEASE)
    store.finish(claim, written, now=T + 1, report_keys={"report.png": "reports/st-mary/x/report.png"})
    wire = store._db.get_item(TableName=TABLE, Key={"upload_id": {"S": upload.upload_id}})["Item"]
    assert (wire["bone_age_months"], wire["sds"], wire["hand_box"]["L"][0]) == ({"N": "178"}, {"N": "0"}, {"N": "10"})

    record = store.read(upload.upload_id)
    assert record is not None and record.result is not None
    read = record.result
    expected = dataclasses.replace(written, source=read.source)      # the record keeps no file name
    assert read == expected
    assert type(read.bone_age_months) is float and type(read.sds) is float
    assert all(type(v) is float for v in [*read.hand_box, *read.bone_age_interval_months, *read.timings_ms.values()])
    assert json.dumps(read.as_dict()) == json.dumps(expected.as_dict())
    url = "https://reports.invalid/report.png"
    assert build_message(read, hospital_id="st-mary", upload_id=upload.upload_id, report_url=url) == build_message(
        expected, hospital_id="st-mary", upload_id=upload.upload_id, report_url=url)
