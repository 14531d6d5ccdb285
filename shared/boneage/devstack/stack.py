"""The application on a laptop: moto in server mode on loopback, ``template.yaml`` deployed into it.

``LocalStack.start()`` starts ``moto.server.ThreadedMotoServer`` on 127.0.0.1, transforms the SAM
template with aws-sam-translator, creates the CloudFormation stack in moto, then applies what moto's
CloudFormation skips (bucket notifications, public access blocks, bucket/queue/topic policies,
alarms). Moto cannot run an image-packaged function, so the stack's SQS event source mapping is
disabled and ``LocalStack.drain()`` plays its part: it receives from the queue, calls the handler
in-process with the real SQS event shape, deletes what succeeded and releases what failed (moto
applies the redrive policy, so a message that fails ``MaxReceiveCount`` times lands in the DLQ).

Reused by ``scripts/demo.py``, ``scripts/invoke_local.py``, ``scripts/redrive.py``, the benchmark's
end-to-end run and the integration tests. Keep a stack up with ``python scripts/local_stack.py``
(``main`` here). Development only: see ``boneage.devstack``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import sys
import threading
import time
import uuid
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

ROOT = Path(__file__).resolve().parents[3]        # the checkout: shared/boneage/devstack -> root
TEMPLATE = ROOT / "template.yaml"
REGION = "us-east-1"
ACCOUNT = "123456789012"        # moto's default account
PLACEHOLDER_IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/boneage-assess:local"

# Dummy credentials: moto accepts anything, and they keep boto3 away from any real profile.
EMULATOR_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "BoneAge",
    "POWERTOOLS_SERVICE_NAME": "boneage",
}

Handler = Callable[[dict[str, Any], Any], Any]
_CLIENTS: dict[tuple[str, str], Any] = {}
_CLIENTS_LOCK = threading.Lock()


PACKAGE_BUCKET = "boneage-local-packages"     # named in the emulator's stack, never created: nothing runs from it


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The SAM template as plain JSON-able data (cfn-lint's loader understands the short intrinsic tags)."""
    from cfnlint.decode import cfn_yaml

    return json.loads(json.dumps(cfn_yaml.load(str(path))))


def transform_template(template: Mapping[str, Any], image_uri: str = PLACEHOLDER_IMAGE) -> dict[str, Any]:
    """SAM -> CloudFormation, as `sam deploy` would do (with the image URI `sam build` would fill in)."""
    from samtranslator.translator.transform import transform

    template = json.loads(json.dumps(template))
    for resource in template["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Serverless::Function" and props.get("PackageType") == "Image":
            props.setdefault("ImageUri", image_uri)
        # Zip functions and layers: `sam package` would upload the folder and put its S3 URI here.
        for uri in ("CodeUri", "ContentUri"):
            if isinstance(props.get(uri), str) and not props[uri].startswith("s3://"):
                props[uri] = f"s3://{PACKAGE_BUCKET}/{props[uri].strip('/')}.zip"

    class _NoManagedPolicies:       # the template names no managed policy by name; nothing to look up
        def load(self) -> dict[str, str]:
            return {}

    with _patched_env({"AWS_DEFAULT_REGION": REGION}):     # the translator resolves AWS::Region from it
        return transform(template, {}, _NoManagedPolicies())


def _stage_packages(s3: Any, cfn_template: Mapping[str, Any]) -> None:
    """Put an empty zip where each zip function's and layer's package would be: the emulator's Lambda
    reads it on create, while the local stack runs that code in-process from the checkout."""
    keys = {code["S3Key"] for resource in cfn_template["Resources"].values()
            for code in (resource.get("Properties", {}).get("Code"), resource.get("Properties", {}).get("Content"))
            if isinstance(code, dict) and code.get("S3Bucket") == PACKAGE_BUCKET}
    if not keys:
        return
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w"):
        pass
    s3.create_bucket(Bucket=PACKAGE_BUCKET)
    for key in keys:
        s3.put_object(Bucket=PACKAGE_BUCKET, Key=key, Body=buffer.getvalue())


@contextmanager
def _patched_env(values: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@dataclass
class LambdaContext:
    """Just what Powertools reads from the Lambda context object."""

    function_name: str = "boneage-local-assess"
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 3538
    timeout_ms: int = 60_000
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    started: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return "local"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self.timeout_ms - (time.monotonic() - self.started) * 1000))


def emulator_client(endpoint: str, service: str) -> Any:
    """A cached client of the emulator (creating one costs ~0.4 s of JSON parsing; clients are thread-safe).

    Credentials are passed explicitly so nothing depends on, or leaks into, this process's environment.
    """
    with _CLIENTS_LOCK:
        key = (endpoint, service)
        if key not in _CLIENTS:
            session = boto3.session.Session(
                region_name=REGION, aws_access_key_id=EMULATOR_ENV["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=EMULATOR_ENV["AWS_SECRET_ACCESS_KEY"],
                aws_session_token=EMULATOR_ENV["AWS_SESSION_TOKEN"])
            _CLIENTS[key] = session.client(service, endpoint_url=endpoint)
        return _CLIENTS[key]


class _Resolver:
    """Resolves Ref / Fn::GetAtt / Fn::Sub / Fn::Join against the deployed stack, for what moto skipped."""

    def __init__(self, physical: Mapping[str, str], types: Mapping[str, str], sqs: Any) -> None:
        self.physical = physical
        self.types = types
        self.sqs = sqs
        self.pseudo = {"AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws",
                       "AWS::URLSuffix": "amazonaws.com"}

    def ref(self, name: str) -> str:
        if name in self.pseudo:
            return self.pseudo[name]
        if name == "AWS::StackName":
            return self.pseudo["AWS::StackName"]
        return self.physical[name]

    def getatt(self, name: str, attr: str) -> str:
        kind, phys = self.types[name], self.physical[name]
        if kind == "AWS::S3::Bucket" and attr == "Arn":
            return f"arn:aws:s3:::{phys}"
        if kind == "AWS::SQS::Queue":
            attrs = self.sqs.get_queue_attributes(QueueUrl=phys, AttributeNames=["QueueArn"])["Attributes"]
            return attrs["QueueArn"] if attr == "Arn" else phys.rsplit("/", 1)[-1]
        if kind == "AWS::SNS::Topic" and attr == "TopicName":
            return phys.rsplit(":", 1)[-1]
        if kind == "AWS::KMS::Key" and attr == "Arn":
            return f"arn:aws:kms:{REGION}:{ACCOUNT}:key/{phys}"
        if kind == "AWS::DynamoDB::Table" and attr == "Arn":
            return f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{phys}"
        if kind == "AWS::Lambda::Function" and attr == "Arn":
            return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{phys}"
        raise KeyError(f"cannot resolve {name}.{attr}")

    def __call__(self, value: Any) -> Any:
        if isinstance(value, list):
            return [self(v) for v in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            return self.ref(value["Ref"])
        if set(value) == {"Fn::GetAtt"}:
            name, attr = value["Fn::GetAtt"] if isinstance(value["Fn::GetAtt"], list) \
                else value["Fn::GetAtt"].split(".", 1)
            return self.getatt(name, attr)
        if set(value) == {"Fn::Join"}:
            sep, parts = value["Fn::Join"]
            return sep.join(str(self(p)) for p in parts)
        if set(value) == {"Fn::Sub"}:
            text = value["Fn::Sub"]
            import re

            def sub(match: re.Match[str]) -> str:
                token = match.group(1)
                if "." in token and not token.startswith("AWS::"):
                    return self.getatt(*token.split(".", 1))
                return self.ref(token)

            return re.sub(r"\$\{([^}!]+)\}", sub, text)
        return {k: self(v) for k, v in value.items()}


# -- what moto's CloudFormation skips ----------------------------------------------------------
# One implementation for every stack deployed into the emulator (the main stack here, each
# hospital's onboarding stack in ``hospitals``); each caller names the resource types it applies.
# The main stack leaves its functions' roles (the handlers run in-process with the emulator's
# credentials, IAM not enforced) and its alarm topic's subscriptions as moto deployed them.
_Client = Callable[[str], Any]


def _apply_bucket(logical: str, props: Mapping[str, Any], resolve: _Resolver, client: _Client) -> None:
    s3 = client("s3")
    bucket = resolve.ref(logical)
    if "VersioningConfiguration" in props:
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration=props["VersioningConfiguration"])
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(Bucket=bucket,
                                   PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"])
    for q in props.get("NotificationConfiguration", {}).get("QueueConfigurations", []):
        rules = q.get("Filter", {}).get("S3Key", {}).get("Rules", [])
        s3.put_bucket_notification_configuration(Bucket=bucket, NotificationConfiguration={
            "QueueConfigurations": [{
                "QueueArn": resolve(q["Queue"]), "Events": [q["Event"]],
                "Filter": {"Key": {"FilterRules": [{"Name": r["Name"], "Value": r["Value"]} for r in rules]}},
            }],
        })


def _apply_bucket_policy(logical: str, props: Mapping[str, Any], resolve: _Resolver, client: _Client) -> None:
    # Moto enforces bucket policies, and the emulator speaks plain HTTP on loopback: the TLS-only
    # deny would refuse every request, so it is the one statement left out here.
    document = resolve(props["PolicyDocument"])
    document["Statement"] = [st for st in document["Statement"]
                             if "aws:SecureTransport" not in json.dumps(st.get("Condition", {}))]
    if document["Statement"]:
        client("s3").put_bucket_policy(Bucket=resolve(props["Bucket"]), Policy=json.dumps(document))


def _apply_queue_policy(logical: str, props: Mapping[str, Any], resolve: _Resolver, client: _Client) -> None:
    for queue in props["Queues"]:
        client("sqs").set_queue_attributes(QueueUrl=resolve(queue), Attributes={
            "Policy": json.dumps(resolve(props["PolicyDocument"]))})


def _apply_topic_policy(logical: str, props: Mapping[str, Any], resolve: _Resolver, client: _Client) -> None:
    for topic in props["Topics"]:
        client("sns").set_topic_attributes(TopicArn=resolve(topic), AttributeName="Policy",
                                           AttributeValue=json.dumps(resolve(props["PolicyDocument"])))


def _apply_subscription(logical: str, props: Mapping[str, Any], resolve: _Resolver, client: _Client) -> None:
    attributes = {"FilterPolicy": json.dumps(resolve(props["FilterPolicy"])),
                  "FilterPolicyScope": props["FilterPolicyScope"]}
    if props.get("RawMessageDelivery"):
        attributes["RawMessageDelivery"] = "true"
    client("sns").subscribe(TopicArn=resolve(props["TopicArn"]), Protocol=props["Protocol"],
                            Endpoint=resolve(props["Endpoint"]), Attributes=attributes)


def _apply_role(logical: str, props: Mapping[str, Any], resolve: _Resolver, client: _Client) -> None:
    # Moto's CloudFormation keeps an inline policy as a Python dict, which its own IAM evaluator
    # cannot read (it expects JSON): the same documents, put again through the IAM API.
    iam = client("iam")
    for policy in props["Policies"]:
        iam.put_role_policy(RoleName=props["RoleName"], PolicyName=policy["PolicyName"],
                            PolicyDocument=json.dumps(resolve(policy["PolicyDocument"])))
    iam.update_assume_role_policy(RoleName=props["RoleName"],
                                  PolicyDocument=json.dumps(resolve(props["AssumeRolePolicyDocument"])))


def _apply_alarm(logical: str, props: Mapping[str, Any], resolve: _Resolver, client: _Client) -> None:
    args = {k: resolve(v) for k, v in props.items()}
    args["AlarmName"] = f"{resolve.ref('AWS::StackName')}-{logical}"
    for k in ("Threshold", "Period", "EvaluationPeriods"):
        args[k] = float(args[k]) if k == "Threshold" else int(args[k])
    client("cloudwatch").put_metric_alarm(**args)


def _disable_event_source_mapping(logical: str, props: Mapping[str, Any], resolve: _Resolver,
                                  client: _Client) -> str:
    # Moto would try to run the image in Docker; LocalStack.drain() stands in for the mapping.
    uuid_ = resolve.ref(logical)
    client("lambda").update_event_source_mapping(UUID=uuid_, Enabled=False)
    return uuid_


_APPLY: dict[str, Callable[[str, Mapping[str, Any], _Resolver, _Client], str | None]] = {
    "AWS::S3::Bucket": _apply_bucket,
    "AWS::S3::BucketPolicy": _apply_bucket_policy,
    "AWS::SQS::QueuePolicy": _apply_queue_policy,
    "AWS::SNS::TopicPolicy": _apply_topic_policy,
    "AWS::SNS::Subscription": _apply_subscription,
    "AWS::IAM::Role": _apply_role,
    "AWS::CloudWatch::Alarm": _apply_alarm,
    "AWS::Lambda::EventSourceMapping": _disable_event_source_mapping,
}
MAIN_STACK_SKIPPED = frozenset({"AWS::S3::Bucket", "AWS::S3::BucketPolicy", "AWS::SQS::QueuePolicy",
                                "AWS::SNS::TopicPolicy", "AWS::CloudWatch::Alarm",
                                "AWS::Lambda::EventSourceMapping"})
HOSPITAL_STACK_SKIPPED = frozenset({"AWS::IAM::Role", "AWS::SQS::QueuePolicy", "AWS::SNS::Subscription"})


def resolver_for(template: Mapping[str, Any], physical: Mapping[str, str], stack_name: str,
                 client: _Client) -> _Resolver:
    """What resolves ``template``'s intrinsics against stack ``stack_name`` as deployed (``physical``:
    logical id -> physical id)."""
    resolver = _Resolver(physical, {k: v["Type"] for k, v in template["Resources"].items()}, client("sqs"))
    resolver.pseudo["AWS::StackName"] = stack_name
    return resolver


def apply_skipped(template: Mapping[str, Any], resolve: _Resolver, client: _Client, *,
                  kinds: frozenset[str]) -> list[str]:
    """Apply, from ``template`` itself (intrinsics resolved by ``resolve``), the resources of ``kinds``
    that moto's CloudFormation deployed incompletely or not at all, in template order. ``client``
    gives a boto3 client by service name. Returns the UUIDs of the event source mappings disabled."""
    unknown = kinds - _APPLY.keys()
    if unknown:
        raise ValueError(f"no way to apply {sorted(unknown)}")
    disabled: list[str] = []
    for logical, resource in template["Resources"].items():
        kind = resource["Type"]
        if kind in kinds:
            done = _APPLY[kind](logical, resource.get("Properties", {}), resolve, client)
            if done is not None:
                disabled.append(done)
    return disabled


@dataclass
class LocalStack:
    endpoint: str
    stack_name: str
    outputs: dict[str, str]
    server: Any = None
    esm_uuid: str | None = None
    handler_env: dict[str, str] = field(default_factory=dict)
    _arns: dict[str, str] = field(default_factory=dict, repr=False)

    # -- life cycle ----------------------------------------------------------------------------
    @classmethod
    def start(cls, *, stack_name: str = "boneage-local", port: int = 0,
              parameters: Mapping[str, str] | None = None) -> LocalStack:
        from moto.server import ThreadedMotoServer

        from boneage.compat.moto import stamp_uploader_identity

        # Moto's S3 events do not say who put the object; AWS's do, and the function checks it.
        stamp_uploader_identity(ACCOUNT)
        logging.getLogger("moto").setLevel(logging.ERROR)
        logging.getLogger("werkzeug").setLevel(logging.ERROR)     # one line per request otherwise
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        host, bound = server.get_host_and_port()
        stack = cls.deploy(f"http://{host}:{bound}", stack_name=stack_name, parameters=parameters)
        stack.server = server
        return stack

    @classmethod
    def deploy(cls, endpoint: str, *, stack_name: str = "boneage-local",
               parameters: Mapping[str, str] | None = None) -> LocalStack:
        """Deploy template.yaml into the emulator at ``endpoint`` and apply what its CloudFormation skips."""
        # Moto warns once per resource type its CloudFormation skips (applied below) and prints a Docker
        # probe when it registers the image function; neither helps a reader of the demo.
        warnings.filterwarnings("ignore", message="Tried to parse", category=UserWarning)
        with contextlib.redirect_stdout(io.StringIO()):
            return cls._deploy(endpoint, stack_name=stack_name, parameters=parameters)

    @classmethod
    def _deploy(cls, endpoint: str, *, stack_name: str, parameters: Mapping[str, str] | None) -> LocalStack:
        sam_template = load_template()
        cfn_template = transform_template(sam_template)
        _stage_packages(emulator_client(endpoint, "s3"), cfn_template)
        cfn = emulator_client(endpoint, "cloudformation")
        cfn.create_stack(
            StackName=stack_name, TemplateBody=json.dumps(cfn_template),
            Parameters=[{"ParameterKey": k, "ParameterValue": str(v)} for k, v in (parameters or {}).items()],
            Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"],
        )
        cfn.get_waiter("stack_create_complete").wait(StackName=stack_name, WaiterConfig={"Delay": 1})
        described = cfn.describe_stacks(StackName=stack_name)["Stacks"][0]
        outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
        summaries = cfn.list_stack_resources(StackName=stack_name)["StackResourceSummaries"]
        physical = {s["LogicalResourceId"]: s.get("PhysicalResourceId", "") for s in summaries}
        stack = cls(endpoint=endpoint, stack_name=stack_name, outputs=outputs)
        resolver = resolver_for(cfn_template, physical, stack_name, stack.client)
        disabled = apply_skipped(cfn_template, resolver, stack.client, kinds=MAIN_STACK_SKIPPED)
        stack.esm_uuid = disabled[-1] if disabled else None
        # Outputs moto could not compute (GetAtt on skipped attributes) are resolved the same way.
        for key, spec in cfn_template.get("Outputs", {}).items():
            if not outputs.get(key):
                try:
                    outputs[key] = str(resolver(spec["Value"]))
                except KeyError:    # names a resource the emulator has no CloudFormation for (Cognito)
                    continue
        stack.handler_env = stack._handler_env(sam_template)
        return stack

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def __enter__(self) -> LocalStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- clients and environment ---------------------------------------------------------------
    def client(self, service: str) -> Any:
        return emulator_client(self.endpoint, service)

    def queue_arn(self, queue_url: str) -> str:
        if queue_url not in self._arns:
            attrs = self.client("sqs").get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])
            self._arns[queue_url] = attrs["Attributes"]["QueueArn"]
        return self._arns[queue_url]

    def _handler_env(self, sam_template: Mapping[str, Any]) -> dict[str, str]:
        """The function's environment as Lambda would set it, pointed at the emulator."""
        o = self.outputs
        env = dict(EMULATOR_ENV)
        env.update({
            "AWS_ENDPOINT_URL": self.endpoint,
            "RESULTS_TABLE": o["ResultsTableName"],
            "RESULTS_BUCKET": o["ResultsBucketName"],
            "TOPIC_ARN": o["ResultsTopicArn"],
            "QUEUE_URL": o["AssessQueueUrl"],
            "DLQ_URL": o["DeadLetterQueueUrl"],
            "REDRIVE_QUEUE_URL": o["RedriveQueueUrl"],
            "UPLOADER_REGISTRY": o["UploaderRegistryPrefix"],       # the check is on, as in the template
            "INPUT_PREFIX": "incoming/",
            "REPORTS_PREFIX": "reports/",
            "MAX_RECEIVE_COUNT": str(self.max_receive_count),
            "LEASE_SECONDS": "60",
            # `make model` output when present; otherwise the engine runs the committed demo weights.
            "MODEL_DIR": str(ROOT / "build" / "model") if (ROOT / "build" / "model").is_dir() else "",
        })
        return env

    @contextmanager
    def environment(self, **overrides: str) -> Iterator[dict[str, str]]:
        """Temporarily set the handler's environment in this process (boto3 reads endpoints from it)."""
        env = {**self.handler_env, **overrides}
        with _patched_env(env):
            yield env

    @property
    def input_bucket(self) -> str:
        return self.outputs["InputBucketName"]

    @property
    def queue_url(self) -> str:
        return self.outputs["AssessQueueUrl"]

    @property
    def dlq_url(self) -> str:
        return self.outputs["DeadLetterQueueUrl"]

    @property
    def max_receive_count(self) -> int:
        attrs = self.client("sqs").get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["RedrivePolicy"])
        return int(json.loads(attrs["Attributes"]["RedrivePolicy"])["maxReceiveCount"])

    # -- hospital side -------------------------------------------------------------------------
    def subscribe_queue(self, name: str, *, filter_policy: Mapping[str, Any] | None = None) -> str:
        """An SQS queue subscribed to the results topic (optionally with a filter policy); returns its URL."""
        sqs, sns = self.client("sqs"), self.client("sns")
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        attributes = {"FilterPolicy": json.dumps(filter_policy)} if filter_policy else {}
        sns.subscribe(TopicArn=self.outputs["ResultsTopicArn"], Protocol="sqs", Endpoint=arn,
                      Attributes=attributes)
        return url

    def received_notifications(self, queue_url: str) -> list[dict[str, Any]]:
        """Drain a subscribed queue: the SNS envelopes (Message, MessageAttributes, Subject ...)."""
        sqs = self.client("sqs")
        found: list[dict[str, Any]] = []
        while True:
            resp = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
            messages = resp.get("Messages", [])
            if not messages:
                return found
            for m in messages:
                found.append(json.loads(m["Body"]))
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])

    # -- Lambda's side -------------------------------------------------------------------------
    def receive_event(self, queue_url: str | None = None, *, batch_size: int = 1) -> tuple[dict[str, Any], list]:
        """One SQS event as the event source mapping would build it, plus the raw messages."""
        queue_url = queue_url or self.queue_url
        sqs = self.client("sqs")
        arn = self.queue_arn(queue_url)
        resp = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=batch_size, WaitTimeSeconds=0,
                                   AttributeNames=["All"], MessageAttributeNames=["All"])
        messages = resp.get("Messages", [])
        records = [{
            "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
            "attributes": m.get("Attributes", {}), "messageAttributes": m.get("MessageAttributes", {}),
            "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs", "eventSourceARN": arn, "awsRegion": REGION,
        } for m in messages]
        return {"Records": records}, messages

    def deliver_once(self, handler: Handler, *, queue_url: str | None = None, batch_size: int = 1) -> int:
        """Receive one batch, invoke the handler, settle the messages as Lambda does; returns messages seen."""
        queue_url = queue_url or self.queue_url
        event, messages = self.receive_event(queue_url, batch_size=batch_size)
        if not messages:
            return 0
        try:
            response = handler(event, LambdaContext()) or {}
            failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        except Exception:
            failed = {m["MessageId"] for m in messages}     # the whole batch is retried
        sqs = self.client("sqs")
        for m in messages:
            if m["MessageId"] in failed:
                # Visible again at once: in AWS it waits for the visibility timeout, which only slows tests.
                sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"],
                                              VisibilityTimeout=0)
            else:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
        return len(messages)

    def drain(self, handler: Handler, *, queue_url: str | None = None, batch_size: int = 1,
              concurrency: int = 1, idle_rounds: int = 3, timeout_s: float = 600) -> int:
        """Deliver until the queue stays empty; returns the number of deliveries (retries included)."""
        queue_url = queue_url or self.queue_url
        deliveries, idle, deadline = 0, 0, time.monotonic() + timeout_s
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            while idle < idle_rounds and time.monotonic() < deadline:
                counts = list(pool.map(lambda _: self.deliver_once(handler, queue_url=queue_url,
                                                                   batch_size=batch_size), range(concurrency)))
                seen = sum(counts)
                deliveries += seen
                idle = idle + 1 if seen == 0 else 0
                if seen == 0:
                    time.sleep(0.05)    # S3 -> SQS notifications are asynchronous even in moto
        return deliveries

    def queue_depth(self, queue_url: str) -> int:
        """Messages waiting (visible). In-flight ones are left out: moto's count of those keeps messages
        its redrive policy already moved to the dead-letter queue."""
        attrs = self.client("sqs").get_queue_attributes(
            QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
        return int(attrs["ApproximateNumberOfMessages"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=5000, help="loopback port for moto (default 5000)")
    parser.add_argument("--stack-name", default="boneage-local")
    args = parser.parse_args(argv)
    stack = LocalStack.start(stack_name=args.stack_name, port=args.port)
    print(json.dumps({"endpoint": stack.endpoint, **stack.outputs}, indent=2))
    env_file = ROOT / "build" / "local-stack.env.json"
    env_file.parent.mkdir(parents=True, exist_ok=True)
    env_file.write_text(json.dumps(stack.handler_env, indent=2))
    print(f"handler environment written to {env_file.relative_to(ROOT)}; Ctrl-C stops the emulator", file=sys.stderr)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        stack.stop()
    return 0
