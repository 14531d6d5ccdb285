"""`make demo`: the whole application on this machine, as a hospital and a clinician would see it.

Starts moto in server mode on 127.0.0.1, deploys template.yaml into it (SAM transform ->
CloudFormation, plus what moto skips), subscribes one SQS queue per hospital to the results topic with
a filter policy on ``hospital_id``, uploads radiographs with boto3 as a hospital would (a DICOM girl,
a PNG boy with x-amz-meta metadata, a right hand, a file that is not an image), delivers the S3
notifications from the queue to the real handler (real model, real reports) as Lambda's event source
mapping would, then prints each DynamoDB record and each notification each hospital received.
Then, when Orthanc is installed, the PACS loop (``boneage.devstack.pacs_demo``): Orthanc sends a study to
``boneage gateway``, the live local deployment assesses it, and the SC and SR come back into Orthanc.
Exits non-zero if any upload did not end in a record.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from boneage.devstack import ROOT, LocalStack, load_handler, onboard, sample_uploads

TERMINAL = {"completed", "rejected", "failed"}


def _record_line(item: dict[str, Any]) -> str:
    keep = ("status", "reason", "hospital_id", "bone_age_months", "bone_age_interval_months", "sex",
            "chronological_age_months", "sds", "interpretation", "predicted_adult_height_cm", "laterality",
            "mirrored", "study_reference", "model_version", "attempts", "notified_status", "report_keys")
    return json.dumps({"upload_id": item["upload_id"], **{k: item.get(k) for k in keep}}, default=str)


def run(seed: int, *, verbose: bool) -> int:
    print("starting moto on 127.0.0.1 and deploying template.yaml ...", flush=True)
    t0 = time.monotonic()
    stack = LocalStack.start(stack_name="boneage-demo")
    try:
        print(f"deployed in {time.monotonic() - t0:.1f} s at {stack.endpoint}: "
              f"bucket {stack.input_bucket}, table {stack.outputs['ResultsTableName']}", flush=True)
        uploads = sample_uploads(seed)
        hospitals = sorted({u.hospital_id for u in uploads})
        inboxes = {h: stack.subscribe_queue(f"clinicians-{h}", filter_policy={"hospital_id": [h]}) for h in hospitals}

        # The function's JSON logs and EMF metrics would drown the summary; --verbose keeps them.
        quiet = {} if verbose else {"POWERTOOLS_LOG_LEVEL": "WARNING", "POWERTOOLS_METRICS_DISABLED": "true"}
        with stack.environment(**quiet):
            app = load_handler()
            from boneage.upload import upload_id_for
            from boneage.adapters.store import ResultStore

            print("loading the model (Lambda init) ...", flush=True)
            t0 = time.monotonic()
            app.init()
            print(f"initialised in {time.monotonic() - t0:.1f} s", flush=True)

            # Each hospital uploads as its own gateway role (onboarded); the function refuses anyone else.
            s3 = {h: onboard(stack, h).client("s3") for h in hospitals}
            ids: dict[str, str] = {}
            for u in uploads:
                put = s3[u.hospital_id].put_object(Bucket=stack.input_bucket, Key=u.key, Body=u.body,
                                                   Metadata=u.metadata)
                ids[u.name] = upload_id_for(stack.input_bucket, u.key, put.get("VersionId"))
                print(f"uploaded {u.name:<22} -> s3://{stack.input_bucket}/{u.key}", flush=True)

            t0 = time.monotonic()
            deliveries = stack.drain(app.handler)
            print(f"\n{deliveries} deliveries handled in {time.monotonic() - t0:.1f} s\n", flush=True)

            store = ResultStore(stack.client("dynamodb"), stack.outputs["ResultsTableName"])
            missing = []
            print("DynamoDB records:")
            for u in uploads:
                item = store.get(ids[u.name])
                if item is None or item.get("status") not in TERMINAL:
                    missing.append(u.name)
                    print(f"  {u.name}: NO TERMINAL RECORD ({item and item.get('status')})")
                    continue
                flag = "" if item["status"] == u.expect else f"   (expected {u.expect})"
                print(f"  {u.name}:{flag}\n    {_record_line(item)}")

            print("\nSNS notifications received per hospital (filter policy on hospital_id):")
            for h, url in inboxes.items():
                notes = stack.received_notifications(url)
                print(f"  {h}: {len(notes)} notification(s)")
                for n in notes:
                    attrs = {k: v["Value"] for k, v in n.get("MessageAttributes", {}).items()}
                    body = json.loads(n["Message"])
                    print(f"    subject: {n.get('Subject')}\n    attributes: {json.dumps(attrs)}\n"
                          f"    bone_age_months: {body.get('bone_age_months')}  report_url: "
                          f"{'yes' if body.get('report_url') else 'no'}")
            dead = stack.queue_depth(stack.dlq_url)
            print(f"\ndead-letter queue depth: {dead}")
    finally:
        stack.stop()
    if missing:
        print(f"\nFAIL: {len(missing)} upload(s) without a terminal record: {', '.join(missing)}", file=sys.stderr)
        return 1
    print("\nOK: every upload ended in exactly one record")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7, help="seed of the generated radiographs")
    parser.add_argument("--verbose", action="store_true", help="show the function's logs and metrics")
    parser.add_argument("--no-pacs", action="store_true", help="leave out the PACS loop (Orthanc -> gateway -> Orthanc)")
    parser.add_argument("--keep-pacs", action="store_true", help="keep the PACS loop up after it ran, until Ctrl-C")
    args = parser.parse_args(argv)
    code = run(args.seed, verbose=args.verbose)
    if not args.no_pacs:        # skipped with a line saying so when Orthanc is not installed
        from boneage.devstack.pacs_demo import pacs_demo

        code = max(code, pacs_demo(ROOT / "build" / "demo-pacs", seed=args.seed, keep=args.keep_pacs))
    return code


if __name__ == "__main__":
    sys.exit(main())
