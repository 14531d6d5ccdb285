"""The live local deployment behind ``boneage local`` / ``make local``: the emulator with ``template.yaml``
deployed on a fixed port, the function consuming its queue (``poller.EventSourcePoller``), each hospital
onboarded (``hospitals.onboard``: its gateway role, whose session credentials are the ones to upload with,
and its results queue), one clinicians' queue per hospital subscribed to the results topic, and a monitor
that reports every notification the topic sends, until ``stop()``. The function checks who put each
upload, as on AWS: an upload signed with the emulator's default (operator) credentials is refused
(``uploader_mismatch``); ``onboard(H)`` adds a hospital while it runs.

What runs is a list of services (``LocalService``: ``start(deployment) -> dict`` of what to print,
``stop()``), started in order and stopped in reverse, so another part of the application (a results
API, a gateway) joins ``make local`` by adding one. The load benchmark (``boneage.bench.load``) and the
integration tests start the same deployment in-process.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .hospitals import HospitalAccess, onboard
from .poller import EventSink, EventSourcePoller
from .stack import EMULATOR_ENV, REGION, ROOT, LocalStack

DEFAULT_PORT = 4566             # the port AWS emulators customarily use, so copied commands keep working
DEFAULT_HOSPITALS = ("st-mary", "north-gen")
MONITOR_QUEUE = "local-monitor"


class LocalService(Protocol):
    """One part of the running application besides the emulator."""

    name: str

    def start(self, deployment: LocalDeployment) -> dict[str, Any]: ...

    def stop(self) -> None: ...


class FunctionService:
    """The assessment function: ``workers`` containers fed by the event source mapping."""

    name = "function"

    def __init__(self, *, workers: int, retry_after_s: float | None, env: dict[str, str],
                 on_event: EventSink | None) -> None:
        self.workers, self.retry_after_s, self.env, self.on_event = workers, retry_after_s, env, on_event
        self.poller: EventSourcePoller | None = None

    def start(self, deployment: LocalDeployment) -> dict[str, Any]:
        self.poller = EventSourcePoller(deployment.stack, workers=self.workers, retry_after_s=self.retry_after_s,
                                        env=self.env, on_event=self.on_event)
        return self.poller.start()

    def stop(self) -> None:
        if self.poller is not None:
            self.poller.stop()


class NotificationMonitor:
    """Reads a queue subscribed to the results topic (no filter) and reports each notification."""

    name = "monitor"

    def __init__(self, on_notification: Callable[[dict[str, Any]], None]) -> None:
        self.on_notification = on_notification
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, deployment: LocalDeployment) -> dict[str, Any]:
        url = deployment.stack.subscribe_queue(MONITOR_QUEUE)
        self._thread = threading.Thread(target=self._run, args=(deployment.stack, url), name="monitor", daemon=True)
        self._thread.start()
        return {"queue_url": url}

    def _run(self, stack: LocalStack, url: str) -> None:
        sqs = stack.client("sqs")
        while not self._stop.is_set():
            try:
                messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                               MessageAttributeNames=["All"]).get("Messages", [])
            except Exception:
                if self._stop.wait(0.5):
                    return
                continue
            received = time.time()
            for m in messages:
                self.on_notification({**notification_fields(json.loads(m["Body"])), "received_at": received})
            if messages:
                sqs.delete_message_batch(QueueUrl=url, Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


def notification_fields(envelope: dict[str, Any]) -> dict[str, Any]:
    """What a line about one notification shows: its attributes and the result's status and reason."""
    attrs = {k: v.get("Value") for k, v in (envelope.get("MessageAttributes") or {}).items()}
    try:
        body = json.loads(envelope.get("Message") or "{}")
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    return {"upload_id": attrs.get("upload_id") or body.get("upload_id"),
            "hospital_id": attrs.get("hospital_id") or body.get("hospital_id"),
            "status": attrs.get("status") or body.get("status"), "reason": body.get("reason"),
            "bone_age_months": body.get("bone_age_months")}


@dataclass
class LocalDeployment:
    stack: LocalStack
    inboxes: dict[str, str]
    services: list[LocalService] = field(default_factory=list)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    hospitals: dict[str, HospitalAccess] = field(default_factory=dict)

    @classmethod
    def start(cls, *, port: int = DEFAULT_PORT, stack_name: str = "boneage-local", workers: int = 1,
              hospitals: Sequence[str] = DEFAULT_HOSPITALS, retry_after_s: float | None = None,
              parameters: dict[str, str] | None = None, quiet: bool = True,
              on_event: EventSink | None = None, on_notification: Callable[[dict[str, Any]], None] | None = None,
              extra_services: Sequence[LocalService] = ()) -> LocalDeployment:
        """Deploy, onboard the hospitals and subscribe their clinicians' queues, start the services;
        ``port=0`` picks a free one."""
        stack = LocalStack.start(stack_name=stack_name, port=port, parameters=parameters)
        deployment = cls(stack=stack, inboxes={})
        try:
            for h in hospitals:
                deployment.onboard(h)
            deployment.inboxes = {h: stack.subscribe_queue(f"clinicians-{h}", filter_policy={"hospital_id": [h]})
                                  for h in hospitals}
            # The function's JSON logs and EMF metrics go to stderr; quiet keeps warnings and errors only.
            env = {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"} if quiet else {}
            services: list[LocalService] = [FunctionService(workers=workers, retry_after_s=retry_after_s, env=env,
                                                            on_event=on_event)]
            if on_notification is not None:
                services.append(NotificationMonitor(on_notification))
            for service in [*services, *extra_services]:
                deployment.details[service.name] = service.start(deployment)
                deployment.services.append(service)
        except BaseException:
            deployment.stop()
            raise
        return deployment

    def onboard(self, hospital_id: str, *, emails: Sequence[str] = ()) -> HospitalAccess:
        """Onboard a hospital (its stack once; fresh role session credentials on every call): what its
        gateway or uploader needs, credentials included. Uploads must be signed with these to be assessed."""
        access = onboard(self.stack, hospital_id, emails=emails)
        self.hospitals[hospital_id] = access
        return access

    def stop(self) -> None:
        for service in reversed(self.services):
            try:
                service.stop()
            except Exception:       # stopping the rest (and the emulator) matters more
                pass
        self.services = []
        self.stack.stop()

    def __enter__(self) -> LocalDeployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def function(self) -> EventSourcePoller:
        for service in self.services:
            if isinstance(service, FunctionService) and service.poller is not None:
                return service.poller
        raise LookupError("the function is not running")

    def describe(self) -> dict[str, Any]:
        """Everything a client needs: endpoint, credentials, resource names, the services' details."""
        o = self.stack.outputs
        return {
            "endpoint": self.stack.endpoint, "region": REGION,
            "credentials": {"AWS_ACCESS_KEY_ID": EMULATOR_ENV["AWS_ACCESS_KEY_ID"],
                            "AWS_SECRET_ACCESS_KEY": EMULATOR_ENV["AWS_SECRET_ACCESS_KEY"]},
            "bucket": self.stack.input_bucket, "results_bucket": o["ResultsBucketName"],
            "table": o["ResultsTableName"], "topic": o["ResultsTopicArn"], "queue": self.stack.queue_url,
            "dlq": self.stack.dlq_url, "inboxes": dict(self.inboxes), "services": dict(self.details),
            "hospitals": {h: access.describe() for h, access in self.hospitals.items()},
        }

    def commands(self, sample: Path | None = None) -> list[str]:
        """Ready-to-paste AWS CLI lines for this deployment."""
        d = self.describe()
        aws = f"aws --endpoint-url {d['endpoint']}"
        hospital, inbox = next(iter(self.inboxes.items()), ("st-mary", "<clinicians queue url>"))
        access = self.hospitals.get(hospital)
        # The upload is signed as the hospital's gateway role: the function refuses anyone else's.
        as_hospital = " ".join(f"{k}={v}" for k, v in access.credentials.items()) + " " if access else ""
        name = sample.name if sample else "hand.png"
        source = str(sample.relative_to(ROOT)) if sample and sample.is_relative_to(ROOT) else (str(sample) if sample
                                                                                              else "hand.png")
        return [
            f"export AWS_ACCESS_KEY_ID={d['credentials']['AWS_ACCESS_KEY_ID']} "
            f"AWS_SECRET_ACCESS_KEY={d['credentials']['AWS_SECRET_ACCESS_KEY']} AWS_DEFAULT_REGION={REGION}",
            f"{as_hospital}{aws} s3 cp {source} s3://{d['bucket']}/incoming/{hospital}/{name} "
            "--metadata sex=M,age-months=126,study-ref=REF-2002",
            f"{aws} dynamodb scan --table-name {d['table']}",
            f"{aws} sqs receive-message --queue-url {inbox} --wait-time-seconds 10 --message-attribute-names All",
        ]


def write_samples(folder: Path) -> list[Path]:
    """The demo's phantom radiographs (no patient data) as files a newcomer can upload."""
    from .samples import sample_uploads

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for u in sample_uploads():
        path = folder / u.filename.replace(" ", "-")
        path.write_bytes(u.body)
        paths.append(path)
    return paths
