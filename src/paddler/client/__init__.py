"""Async (and thin sync) clients for a Paddler cluster's inference and management APIs.

Requests and results are the typed ``paddler.wire`` classes; errors are in
``paddler.client.errors``. Leaving a stream early stops its request on the server.
"""

from paddler.client._inference import InferenceClient
from paddler.client._management import ManagementClient
from paddler.client._stream import InferenceStream
from paddler.client._sync import SyncInferenceClient, SyncInferenceStream, SyncManagementClient
from paddler.client.errors import (
    ClientError,
    ConnectError,
    ConnectionDropped,
    HTTPStatusError,
    ResponseDecodeError,
    ServerError,
)

__all__ = [
    "ClientError",
    "ConnectError",
    "ConnectionDropped",
    "HTTPStatusError",
    "InferenceClient",
    "InferenceStream",
    "ManagementClient",
    "ResponseDecodeError",
    "ServerError",
    "SyncInferenceClient",
    "SyncInferenceStream",
    "SyncManagementClient",
]
