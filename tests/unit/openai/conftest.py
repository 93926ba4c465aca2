"""Import the OpenAI app once with Litestar's deprecation warnings silenced.

``paddler_server._http`` (server area) still calls Litestar's deprecated ``Dependency()`` at
import time, which ``filterwarnings = error`` turns into a collection error; remove this once
it uses ``NamedDependency``.
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import paddler_server.openai  # noqa: F401
