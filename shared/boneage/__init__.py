"""Bone age assessment: the domain package shared by the Lambda function, the CLI and the scripts.

Sub-packages, each findable by its name:
- ``imaging``   reads DICOM / PNG / JPEG into one normalised image plus metadata (no AWS, no torch).
- ``phantom``   procedural left-hand radiograph phantoms for training and tests.
- ``model``     the two-stage network (hand detector + bone age regressor), configs, training, evaluation.
- ``engine``    builds and loads pre-compiled artifacts (AOTInductor, TorchScript, IPEX, eager).
- ``clinical``  bone age SDS, interpretation flags, adult height prediction (pure functions).
- ``report``    PNG report, DICOM Secondary Capture and Structured Report.
- ``adapters``  S3, DynamoDB and SNS adapters (boto3, never torch).
- ``service``   the assessment use case that ties them together, free of Lambda.
- ``bench``     the inference benchmark (``make bench``); ``devstack`` the local stack (dev extra only).
  Neither is imported by the function.
- ``compat``    the only place private APIs of torch, pydicom, pyjpegls and highdicom are used.
"""

__version__ = "0.1.0"
