"""Chat formats of model families: detection, and one streaming parser per family."""

from paddler.engine._formats._calls import CallShapeError, CallSyntaxError, json_calls
from paddler.engine._formats._format import ChatFormat, StreamParser
from paddler.engine._formats._registry import FORMATS, Detection, detect_chat_format

__all__ = [
    "FORMATS",
    "CallShapeError",
    "CallSyntaxError",
    "ChatFormat",
    "Detection",
    "StreamParser",
    "detect_chat_format",
    "json_calls",
]
