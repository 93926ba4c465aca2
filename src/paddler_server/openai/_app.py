"""The OpenAI-compatible Litestar app: thin handlers over the pure request/response mapping."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import anyio
from litestar import Litestar, Request, Response, get, post
from litestar.di import NamedDependency, Provide
from litestar.exceptions import HTTPException
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath
from litestar.response.base import ASGIResponse

from paddler.balancer import Balancer
from paddler.errors import PaddlerError
from paddler_server._http import BalancerDep, cors_config, health
from paddler_server._limits import ServerLimits
from paddler_server._settings import BalancerSettings
from paddler_server._streaming import write_deadline
from paddler_server.openai._chat import answer_chat
from paddler_server.openai._chat_request import read_chat_request
from paddler_server.openai._completions import answer_completion, read_completion_request
from paddler_server.openai._embeddings import answer_embeddings, read_embedding_request
from paddler_server.openai._errors import OpenAIError
from paddler_server.openai._fields import Object, load_object
from paddler_server.openai._hot import OpenAIApp
from paddler_server.openai._models import ModelNames, model_not_found
from paddler_server.openai._respond import ProducerResponse, Responder
from paddler_server.openai._responses import answer_responses
from paddler_server.openai._responses_request import read_responses_request

__all__ = ["create_openai_app"]


Answer = Callable[[Balancer, Object, ModelNames, Responder], Awaitable[None]]


def _openai_post(path: str, answer: Answer) -> HTTPRouteHandler:
    """A ``POST`` route whose body is parsed and answered by ``answer`` inside a producer."""

    async def handler(
        request: Request[Any, Any, Any],
        balancer: BalancerDep,
        names: NamedDependency[ModelNames],
        limits: NamedDependency[ServerLimits],
        shutdown: NamedDependency[anyio.Event | None],
    ) -> ASGIResponse:
        # The body is read here, before the response starts watching the connection for a
        # disconnect, so the two never compete for the same ASGI messages.
        raw = await request.body()
        return _answer_body(answer, raw, balancer, names, limits, shutdown)

    _POSTS[path] = answer
    return post(path, name=path)(handler)


#: Every POST route's answer by path, for the routes ``OpenAIApp`` answers without Litestar.
_POSTS: dict[str, Answer] = {}


def _answer_body(
    answer: Answer,
    raw: bytes,
    balancer: Balancer,
    names: ModelNames,
    limits: ServerLimits,
    shutdown: anyio.Event | None,
) -> ProducerResponse:
    async def producer(responder: Responder) -> None:
        with _counted_if_refused(balancer):
            body = load_object(raw, max_depth=limits.max_json_depth)
        await answer(balancer, body, names, responder)

    return ProducerResponse(producer, shutdown=shutdown, **write_deadline(balancer))


@contextlib.contextmanager
def _counted_if_refused(balancer: Balancer) -> Iterator[None]:
    """A request refused while its body is read (a 400 naming the field) is counted in the
    balancer's statistics and ``/metrics``; what fails later, the balancer counts itself."""
    try:
        yield
    except (OpenAIError, PaddlerError) as exc:
        balancer.count_rejected(exc.status if isinstance(exc, OpenAIError) else exc.code)
        raise


async def _chat(balancer: Balancer, body: Object, names: ModelNames, responder: Responder) -> None:
    with _counted_if_refused(balancer):
        chat = read_chat_request(body)  # pure and linear: no schema is converted here
        pool, model = await names.route(chat.model)
    await answer_chat(balancer, chat, model, responder, pool=pool)


async def _completion(
    balancer: Balancer, body: Object, names: ModelNames, responder: Responder
) -> None:
    with _counted_if_refused(balancer):
        completion = read_completion_request(body)
        pool, model = await names.route(completion.model)
    await answer_completion(balancer, completion, model, responder, pool=pool)


async def _responses(
    balancer: Balancer, body: Object, names: ModelNames, responder: Responder
) -> None:
    with _counted_if_refused(balancer):
        parsed = read_responses_request(body)
        pool, model = await names.route(parsed.model)
    await answer_responses(balancer, parsed, model, responder, pool=pool)


async def _embeddings(
    balancer: Balancer, body: Object, names: ModelNames, responder: Responder
) -> None:
    with _counted_if_refused(balancer):
        parsed = read_embedding_request(body)
        pool, model = await names.route(parsed.model)
    await responder.json(await answer_embeddings(balancer, parsed, model, pool=pool))


chat_completions = _openai_post("/v1/chat/completions", _chat)
completions = _openai_post("/v1/completions", _completion)
responses = _openai_post("/v1/responses", _responses)
embeddings = _openai_post("/v1/embeddings", _embeddings)


@get("/v1/models")
async def list_models(names: NamedDependency[ModelNames]) -> Response[Any]:
    return Response(await names.listing())


@get("/v1/models/{model_id:path}")
async def retrieve_model(
    model_id: FromPath[str], names: NamedDependency[ModelNames]
) -> Response[Any]:
    wanted = model_id.lstrip("/")
    if wanted not in await names.ids():
        return Response(model_not_found(wanted).body(), status_code=404)
    return Response(names.model_object(wanted))


def _http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    error = OpenAIError(exc.status_code, str(exc.detail))
    return Response(error.body(), status_code=exc.status_code, headers=error.headers)


def create_openai_app(
    balancer: Balancer,
    settings: BalancerSettings | None = None,
    *,
    shutdown: anyio.Event | None = None,
) -> Litestar:
    """The app served at ``--compat-openai-addr``; it shares the balancer (buffer, timeouts).

    When ``shutdown`` is set, open responses end at once: a stream with an error event and
    ``[DONE]``, a request that has not answered yet with a 503.

    :param settings: the model id ``/v1/models`` lists (``served_model_name``; default: the
        GGUF file's stem, e.g. ``SmolLM2-135M-Instruct.Q4_1``), CORS origins (those of the
        inference service), body size (413 above it) and JSON depth. The flags' defaults when
        not given.
    """
    settings = settings or BalancerSettings()
    names = ModelNames(balancer, settings.served_model_name, dict(settings.model_aliases))
    limits = settings.limits
    cors = cors_config(settings.inference_origins)
    app = OpenAIApp(
        route_handlers=[
            health,
            chat_completions,
            completions,
            responses,
            embeddings,
            list_models,
            retrieve_model,
        ],
        dependencies={
            "balancer": Provide(lambda: balancer, sync_to_thread=False),
            "settings": Provide(lambda: settings, sync_to_thread=False),
            "names": Provide(lambda: names, sync_to_thread=False),
            "limits": Provide(lambda: limits, sync_to_thread=False),
            "shutdown": Provide(lambda: shutdown, sync_to_thread=False),
        },
        request_max_body_size=limits.max_body_bytes,
        exception_handlers={HTTPException: _http_error},
        cors_config=cors,
        openapi_config=None,
    )
    app.serve_hot(
        {
            path: functools.partial(
                _answer_body,
                answer,
                balancer=balancer,
                names=names,
                limits=limits,
                shutdown=shutdown,
            )
            for path, answer in _POSTS.items()
        },
        max_body=limits.max_body_bytes,
        cors=cors is not None,
    )
    return app
