"""Why a model could not be loaded: one exception per `AgentIssue` the agent reports."""

from __future__ import annotations

from paddler.errors import PaddlerError


class ModelLoadError(PaddlerError):
    """Base of every load failure; the agent maps each subclass to its `AgentIssue`."""


class ModelCannotBeLoaded(ModelLoadError):
    """llama.cpp could not read the GGUF file (missing, corrupt, unsupported)."""


class UnableToFindChatTemplate(ModelLoadError):
    """Generation needs a chat template and neither the model nor an override has one."""


class ChatTemplateDoesNotCompile(ModelLoadError):
    """The chat template is not valid Jinja."""

    def __init__(self, error: str, template: str) -> None:
        super().__init__(f"chat template does not compile: {error}")
        self.error = error
        self.template = template

    def __reduce__(self) -> tuple[type[ChatTemplateDoesNotCompile], tuple[str, str]]:
        return type(self), (self.error, self.template)  # it crosses the worker's pipe


class MultimodalProjectionCannotBeLoaded(ModelLoadError):
    """mtmd could not load the multimodal projection (mmproj) for this model."""

    def __init__(self, error: str, path: str) -> None:
        super().__init__(error)
        self.error = error
        self.path = path

    def __reduce__(self) -> tuple[type[MultimodalProjectionCannotBeLoaded], tuple[str, str]]:
        return type(self), (self.error, self.path)  # it crosses the worker's pipe


class SlotCannotStart(ModelLoadError):
    """The llama context (and so every slot) could not be created."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class EngineCrashed(ModelLoadError):
    """The engine worker process died (a fault inside llama.cpp, or it was killed)."""

    def __init__(self, how: str) -> None:
        super().__init__(f"the engine worker {how}")
        self.how = how
