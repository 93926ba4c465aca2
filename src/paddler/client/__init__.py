"""Async (and thin sync) clients for a Paddler cluster's inference and management APIs.

Requests and results are the typed ``paddler.wire`` classes; errors are in
``paddler.client.errors``. Leaving a stream early stops its request on the server.
"""

from paddler.client._inference import InferenceClient
from paddler.client._management import ManagementClient
from paddler.client._stream import ResponseStream
from paddler.client._sync import SyncInferenceClient, SyncManagementClient, SyncResponseStream
from paddler.client.errors import (
    ClientError,
    ConnectionDropped,
    HTTPStatusError,
    ResponseDecodeError,
    ServerError,
    ServerUnreachable,
)

__all__ = [
    "ClientError",
    "ConnectionDropped",
    "HTTPStatusError",
    "InferenceClient",
    "ManagementClient",
    "ResponseDecodeError",
    "ResponseStream",
    "ServerError",
    "ServerUnreachable",
    "SyncInferenceClient",
    "SyncManagementClient",
    "SyncResponseStream",
]
