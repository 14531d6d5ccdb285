"""AWS adapters: the only place boto3 is used (and torch never is).

- ``events``     S3 notifications (raw or SQS-wrapped) -> ``Upload`` (decoded key, version, upload_id)
- ``s3``         fetch one object version with its user metadata
- ``store``      the DynamoDB results table, conditional writes, one item per upload
- ``reports``    report files in the results bucket and presigned links
- ``sns``        one notification per result, with filterable attributes
- ``processor``  the per-upload flow the Lambda handler and the redrive script share
- ``runtime``    clients and adapters built once from ``boneage.config.Settings``
"""
