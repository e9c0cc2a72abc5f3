"""The OpenAI Chat surface as the core sees it."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from gateway.core.answer import Answer
from gateway.core.call import Call
from gateway.errors import GatewayError
from gateway.models import ModelCatalogue
from gateway.surfaces.openai_chat import errors, render
from gateway.surfaces.openai_chat.parse import API, parse_chat_request

PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})


class OpenAIChat:
    api = API
    paths = PATHS
    stream_content_type = b"text/event-stream"

    def __init__(self, catalogue: ModelCatalogue) -> None:
        self._catalogue = catalogue
        self.local_paths: Mapping[str, Callable[[bytes], bytes]] = {}

    def parse(self, raw: bytes) -> Call:
        return parse_chat_request(raw, self._catalogue)

    def render_answer(self, call: Call, answer: Answer) -> bytes:
        return render.render_answer(call, answer)

    def stream_renderer(self, call: Call) -> render.ChatStream:
        return render.ChatStream(call)

    def render_error(self, error: GatewayError) -> tuple[int, dict[str, str], bytes]:
        return errors.render_error(error)
