"""Async (and thin sync) clients for a Paddler cluster's inference and management APIs.

Requests and results are the typed ``paddler.wire`` classes; errors are in
``paddler.client.errors``. Leaving a stream early stops its request on the server.
"""

from paddler.client._inference import DEFAULT_INFERENCE_URL, InferenceClient
from paddler.client._management import DEFAULT_MANAGEMENT_URL, ManagementClient
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
    "DEFAULT_INFERENCE_URL",
    "DEFAULT_MANAGEMENT_URL",
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
