"""Turn boto3 failures into the package's two failure kinds, in one place.

Every botocore error of a dependency is a ``TransientFault``: the upload was fine, so the handler
re-raises and the message is retried and, in the end, dead-lettered. Only the adapters decide the
rare cases where an AWS answer is the input's fault (an object deleted before we read it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import BotoCoreError, ClientError

from boneage.errors import TransientFault


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@contextmanager
def dependency(name: str) -> Iterator[None]:
    """Wrap calls to one AWS dependency; the fault message names the dependency and the AWS code only."""
    try:
        yield
    except ClientError as exc:
        raise TransientFault(f"{name} unavailable: {error_code(exc) or 'ClientError'}") from exc
    except BotoCoreError as exc:
        raise TransientFault(f"{name} unavailable: {type(exc).__name__}") from exc
