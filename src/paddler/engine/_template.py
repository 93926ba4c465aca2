"""Chat templates: GGUF Jinja rendered in a sandbox, with the helpers HF templates expect."""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from typing import Any

import jinja2

from paddler.engine._errors import ChatTemplateDoesNotCompile
from paddler.engine._template_sandbox import BoundedSandbox, render_bounded

MEDIA_MARKER = "<__media__>"


class TemplateRenderError(Exception):
    """Rendering failed; the message becomes the request's `ChatTemplateError`."""


def _raise_exception(message: str) -> None:
    raise TemplateRenderError(f"Model's chat template raised an exception: '{message}'")


def _strftime_now(fmt: str) -> str:
    return datetime.datetime.now().strftime(fmt)


def _tojson(value: Any, indent: int | None = None, **kwargs: Any) -> str:
    for rejected in ("ensure_ascii", "sort_keys", "separators"):
        if kwargs.pop(rejected, None):
            raise TemplateRenderError(f"tojson does not support {rejected}")
    if kwargs:
        raise TemplateRenderError(f"tojson got unexpected arguments: {sorted(kwargs)}")
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _environment() -> BoundedSandbox:
    env = BoundedSandbox(  # a time and size budget per render (range, output, operators)
        trim_blocks=True, lstrip_blocks=True, undefined=jinja2.ChainableUndefined
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    return env


#: Probe text for telling templates that read content parts from those that expect strings.
_PROBE = "<<paddler probe: content part>>"


class ChatTemplate:
    """A compiled chat template plus the model's special token strings.

    ``typed_content`` says whether the template reads OpenAI content parts
    (``[{"type": "text", ...}]``) itself. Most GGUF templates (ChatML, Llama 3, Mistral)
    concatenate ``message.content`` as a string; for those, a message's text parts are joined
    (one newline between parts, media markers kept in place) before rendering.
    """

    def __init__(self, source: str, *, bos_token: str, eos_token: str) -> None:
        try:
            self._template = _environment().from_string(source)
        except jinja2.TemplateError as exc:
            raise ChatTemplateDoesNotCompile(str(exc), source) from exc
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.typed_content = self._reads_content_parts()

    def _reads_content_parts(self) -> bool:
        """True when a text part renders exactly as the same text given as a string would.

        A template that concatenates strings fails on a list, and one that prints the value
        (``{{ message.content | trim }}``) shows the list's repr; neither reads parts.
        """

        def probe(content: Any) -> str | None:
            try:
                return self._render([{"role": "user", "content": content}], True, False, None)
            except Exception:
                return None

        as_parts = probe([{"type": "text", "text": _PROBE}])
        if as_parts is None or _PROBE not in as_parts:
            return False
        return as_parts == probe(_PROBE)

    def _render(
        self,
        messages: list[dict[str, Any]],
        add_generation_prompt: bool,
        enable_thinking: bool,
        tools: list[dict[str, Any]] | None,
    ) -> str:
        return render_bounded(
            self._template,
            messages=messages,
            add_generation_prompt=add_generation_prompt,
            enable_thinking=enable_thinking,
            tools=tools,
            bos_token=self.bos_token,
            eos_token=self.eos_token,
            nl_token="\n",
        )

    def render(
        self,
        messages: Sequence[dict[str, Any]],
        *,
        add_generation_prompt: bool,
        enable_thinking: bool,
        tools: Sequence[dict[str, Any]] | None,
    ) -> str:
        """Render a conversation; raises `TemplateRenderError` with a message for the client."""
        shaped = [m if self.typed_content else _joined(m) for m in messages]
        try:
            return self._render(
                shaped, add_generation_prompt, enable_thinking, list(tools) if tools else None
            )
        except TemplateRenderError:
            raise
        except Exception as exc:  # any Jinja or sandbox failure is the template's fault
            raise TemplateRenderError(f"Failed to render the chat template: {exc}") from exc


def _joined(message: dict[str, Any]) -> dict[str, Any]:
    """The message with its content parts joined into one string (for string templates)."""
    content = message.get("content")
    if isinstance(content, str) or not isinstance(content, list | tuple):
        return message
    texts = [str(part.get("text", "")) for part in content if isinstance(part, dict)]
    return {**message, "content": "\n".join(texts)}


def message_to_template(role: str, content: str | Sequence[Any]) -> dict[str, Any]:
    """A conversation message as templates see it; image parts become the media marker."""
    if isinstance(content, str):
        return {"role": role, "content": content}
    parts: list[dict[str, str]] = []
    for part in content:
        text = getattr(part, "text", None)
        if isinstance(text, str):
            parts.append({"type": "text", "text": text})
        else:
            parts.append({"type": "text", "text": MEDIA_MARKER})
    return {"role": role, "content": parts}
