"""Lambda's SQS event source mapping, played on the local stack: workers that each act as one function
container, polling the assessment queue continuously.

Moto cannot run the image-packaged function, so this stands in for the mapping and for Lambda:

- each worker is its own **process** with its own ``app`` module and its own ``app.init()`` (model,
  clients, Powertools' ``BatchProcessor``), as each concurrent Lambda execution environment is its
  own container. Threads would share one ``app`` module, and its module-level ``BatchProcessor``
  keeps per-invocation state, so two invocations at once would mix their partial-batch responses;
  a process also gives each "container" its own peak RSS to compare with ``MemorySize``.
- ``ReceiveMessage`` asks for the deployed mapping's ``BatchSize`` and leaves the visibility timeout
  to the queue, as the mapping does; the event has the real SQS record shape, and the context has the
  function's name, ``MemorySize`` and ``Timeout``.
- partial batch response: only the messages not named in ``batchItemFailures`` are deleted; a handler
  that raises fails the whole batch. Failed messages become visible again after the queue's
  visibility timeout (``retry_after_s`` shortens that for demos and tests) and moto applies the
  queue's redrive policy on receive, so a message received ``maxReceiveCount`` times moves to the
  dead-letter queue as in AWS (moto does this in ``receive_message``; nothing is emulated here).
- a worker still busy past the function timeout is killed and replaced, as Lambda discards a timed-out
  environment: its messages are not deleted and come back after the visibility timeout. A worker that
  dies (killed, out of memory) is replaced too.

What a worker does is reported as small dicts (``{"event": "invocation", ...}``) to ``on_event``.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from .stack import REGION, LambdaContext, LocalStack, emulator_client

EventSink = Callable[[dict[str, Any]], None]
POLL_WAIT_S = 1                 # long-poll wait; short so a stop request is honoured within a second


@dataclass(frozen=True)
class FunctionConfig:
    """What the mapping and the function are configured with in the deployed stack."""

    function_name: str
    batch_size: int
    timeout_s: int
    memory_mb: int
    visibility_timeout_s: int
    max_receive_count: int

    @classmethod
    def from_stack(cls, stack: LocalStack) -> FunctionConfig:
        """Read from the emulator: the mapping's BatchSize, the function's Timeout and MemorySize, the queue's
        VisibilityTimeout and redrive policy, as ``template.yaml`` and its parameters deployed them."""
        lam = stack.client("lambda")
        mapping = lam.get_event_source_mapping(UUID=stack.esm_uuid)
        function = lam.get_function_configuration(FunctionName=mapping["FunctionArn"])
        attrs = stack.client("sqs").get_queue_attributes(QueueUrl=stack.queue_url,
                                                         AttributeNames=["VisibilityTimeout"])["Attributes"]
        return cls(function_name=function["FunctionName"], batch_size=int(mapping["BatchSize"]),
                   timeout_s=int(function["Timeout"]), memory_mb=int(function["MemorySize"]),
                   visibility_timeout_s=int(attrs["VisibilityTimeout"]),
                   max_receive_count=stack.max_receive_count)


def sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """The event Lambda builds from received SQS messages."""
    return {"Records": [{
        "messageId": m["MessageId"], "receiptHandle": m["ReceiptHandle"], "body": m["Body"],
        "attributes": m.get("Attributes", {}), "messageAttributes": m.get("MessageAttributes", {}),
        "md5OfBody": m["MD5OfBody"], "eventSource": "aws:sqs", "eventSourceARN": queue_arn, "awsRegion": REGION,
    } for m in messages]}


def failed_ids(response: Any, messages: list[dict[str, Any]]) -> set[str]:
    """The messages Lambda would leave on the queue after this response."""
    ids = {m["MessageId"] for m in messages}
    if not isinstance(response, Mapping):
        return set()
    named = {str(f.get("itemIdentifier")) for f in response.get("batchItemFailures") or []}
    # Lambda fails the whole batch when the response names a message that was not in it.
    return ids if named - ids else named


@dataclass(frozen=True)
class _WorkerSpec:
    index: int
    endpoint: str
    env: dict[str, str]
    queue_url: str
    queue_arn: str
    config: FunctionConfig
    retry_after_s: float | None


def _worker_main(spec: _WorkerSpec, stop: Any, busy_since: Any, events: Any) -> None:
    """One function container: init once, then receive -> invoke -> settle until ``stop`` is set."""
    # Ctrl-C (and a group-wide SIGTERM) reaches the whole process group; the parent decides when workers
    # stop (after their batch). If the parent itself dies, the worker notices and ends.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = os.getppid()
    os.dup2(2, 1)               # the handler's logs and metrics go to stderr: stdout is the parent's
    os.environ.update(spec.env)
    import resource

    from .handler import load_handler

    t0 = time.monotonic()
    app = load_handler()
    app.init()
    events.put({"event": "worker_ready", "worker": spec.index, "pid": os.getpid(),
                "init_s": round(time.monotonic() - t0, 2)})
    sqs = emulator_client(spec.endpoint, "sqs")
    cfg = spec.config
    while not stop.is_set() and os.getppid() == parent:
        try:
            messages = sqs.receive_message(QueueUrl=spec.queue_url, MaxNumberOfMessages=cfg.batch_size,
                                           WaitTimeSeconds=POLL_WAIT_S, AttributeNames=["All"],
                                           MessageAttributeNames=["All"]).get("Messages", [])
        except Exception as exc:           # the emulator is going away, or was busy: poll again
            if stop.is_set():
                break
            events.put({"event": "poll_error", "worker": spec.index, "error": type(exc).__name__})
            time.sleep(0.5)
            continue
        if not messages:
            continue
        context = LambdaContext(function_name=cfg.function_name, memory_limit_in_mb=cfg.memory_mb,
                                timeout_ms=cfg.timeout_s * 1000)
        busy_since.value = time.time()
        started = time.perf_counter()
        try:
            failed = failed_ids(app.handler(sqs_event(messages, spec.queue_arn), context), messages)
            error = None
        except Exception as exc:            # Lambda: the invocation failed, every message is retried
            failed, error = {m["MessageId"] for m in messages}, type(exc).__name__
        duration_ms = round((time.perf_counter() - started) * 1000, 1)
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            sqs.delete_message_batch(QueueUrl=spec.queue_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)])
        if spec.retry_after_s is not None:
            for m in messages:
                if m["MessageId"] in failed:
                    with contextlib.suppress(Exception):     # already gone to the DLQ or deleted: nothing to do
                        sqs.change_message_visibility(QueueUrl=spec.queue_url, ReceiptHandle=m["ReceiptHandle"],
                                                      VisibilityTimeout=int(spec.retry_after_s))
        busy_since.value = 0.0
        events.put({"event": "invocation", "worker": spec.index, "messages": len(messages), "failed": len(failed),
                    "error": error, "duration_ms": duration_ms,
                    "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})


class _Worker:
    def __init__(self, ctx: Any, spec: _WorkerSpec, events: Any) -> None:
        self.spec = spec
        self.stop = ctx.Event()
        self.busy_since = ctx.Value("d", 0.0)
        self.process = ctx.Process(target=_worker_main, args=(spec, self.stop, self.busy_since, events),
                                   name=f"boneage-worker-{spec.index}", daemon=True)
        self.process.start()


class EventSourcePoller:
    """``workers`` function containers consuming the stack's assessment queue until ``stop()``."""

    name = "function"

    def __init__(self, stack: LocalStack, *, workers: int = 1, retry_after_s: float | None = None,
                 env: Mapping[str, str] | None = None, on_event: EventSink | None = None) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.stack = stack
        self.config = FunctionConfig.from_stack(stack)
        self.workers_wanted = workers
        self.retry_after_s = retry_after_s
        self.env = {**stack.handler_env, "AWS_LAMBDA_FUNCTION_NAME": self.config.function_name,
                    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.config.memory_mb), **(env or {})}
        # app.py's module-level init() runs when AWS_LAMBDA_FUNCTION_NAME is set; the worker calls init()
        # itself so its time is reported, so the variable is left out of the worker's environment.
        self.env.pop("AWS_LAMBDA_FUNCTION_NAME")
        self.sinks: list[EventSink] = [on_event] if on_event else []
        self.peak_rss_mb = 0.0
        self.restarts = 0
        self._ctx = mp.get_context("spawn")
        self._events = self._ctx.Queue()
        self._workers: list[_Worker] = []
        self._ready: set[int] = set()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- life cycle ----------------------------------------------------------------------------
    def start(self, *, ready_timeout_s: float = 300) -> dict[str, Any]:
        """Start the workers and wait until each has initialised (loaded the model)."""
        queue_arn = self.stack.queue_arn(self.stack.queue_url)
        for i in range(self.workers_wanted):
            self._workers.append(self._spawn(i, queue_arn))
        self._threads = [threading.Thread(target=self._pump, name="poller-events", daemon=True),
                         threading.Thread(target=self._supervise, name="poller-supervisor", daemon=True)]
        for t in self._threads:
            t.start()
        deadline = time.monotonic() + ready_timeout_s
        while len(self._ready) < self.workers_wanted:
            dead = [w for w in self._workers if w.spec.index not in self._ready and not w.process.is_alive()]
            if dead:
                self.stop()
                raise RuntimeError(f"a function worker failed to initialise (exit code {dead[0].process.exitcode}); "
                                   "its error is above")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{self.workers_wanted - len(self._ready)} function worker(s) did not initialise "
                                   f"within {ready_timeout_s:.0f} s")
            time.sleep(0.1)
        return self.describe()

    def describe(self) -> dict[str, Any]:
        return {"workers": self.workers_wanted, **asdict(self.config), "retry_after_s": self.retry_after_s}

    def stop(self, *, grace_s: float | None = None) -> None:
        """Let each worker finish its invocation (up to the function timeout), then end them."""
        self._stopping.set()
        for w in self._workers:
            w.stop.set()
        deadline = time.monotonic() + (self.config.timeout_s + POLL_WAIT_S + 5 if grace_s is None else grace_s)
        for w in self._workers:
            w.process.join(max(0.0, deadline - time.monotonic()))
            if w.process.is_alive():
                w.process.kill()
                w.process.join(5)
        for t in self._threads:
            t.join(2)
        self._drain_events()

    # -- internals -----------------------------------------------------------------------------
    def _spawn(self, index: int, queue_arn: str) -> _Worker:
        spec = _WorkerSpec(index=index, endpoint=self.stack.endpoint, env=dict(self.env),
                           queue_url=self.stack.queue_url, queue_arn=queue_arn, config=self.config,
                           retry_after_s=self.retry_after_s)
        return _Worker(self._ctx, spec, self._events)

    def _emit(self, event: dict[str, Any]) -> None:
        if event.get("event") == "worker_ready":
            self._ready.add(event["worker"])
        if "max_rss_mb" in event:
            self.peak_rss_mb = max(self.peak_rss_mb, event["max_rss_mb"])
        for sink in self.sinks:
            sink(event)

    def _pump(self) -> None:
        while not self._stopping.is_set():
            try:
                self._emit(self._events.get(timeout=0.2))
            except queue_mod.Empty:
                continue

    def _drain_events(self) -> None:
        while True:
            try:
                self._emit(self._events.get_nowait())
            except (queue_mod.Empty, OSError, ValueError):
                return

    def _supervise(self) -> None:
        """Lambda's side of a container's life: a timed-out or dead one is discarded and replaced."""
        limit = self.config.timeout_s + 1.0
        while not self._stopping.wait(0.5):
            for i, w in enumerate(self._workers):
                since = w.busy_since.value
                if since and time.time() - since > limit:
                    w.process.kill()
                    w.process.join(5)
                    self._emit({"event": "timeout", "worker": w.spec.index, "timeout_s": self.config.timeout_s})
                elif w.process.is_alive() or self._stopping.is_set() or w.spec.index not in self._ready:
                    continue        # one that never initialised is not restarted: start() reports it
                else:
                    self._emit({"event": "worker_died", "worker": w.spec.index, "exitcode": w.process.exitcode})
                if self._stopping.is_set():
                    return
                self.restarts += 1
                self._ready.discard(w.spec.index)
                self._workers[i] = _Worker(self._ctx, w.spec, self._events)
