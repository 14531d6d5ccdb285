"""AWS adapters: the only place boto3 is used (and torch never is).

They implement the ports (``boneage.ports``) of the upload use case, ``boneage.processor``:

- ``events``     S3 notifications (raw or SQS-wrapped) -> ``boneage.upload.Upload``
- ``s3``         fetch one object version with its user metadata (``ObjectReader``)
- ``store``      the DynamoDB results table, conditional writes, one item per upload (``ResultStore``)
- ``reports``    report files in the results bucket and presigned links (``ReportWriter``)
- ``sns``        one notification per result, with filterable attributes (``Publisher``)
- ``runtime``    clients and adapters built once from ``boneage.config.Settings``, wired into the use case
"""
