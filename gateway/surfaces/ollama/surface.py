"""Ollama's API as the core sees it: two surfaces, one per call endpoint.

`/api/chat` (`api` "ollama.chat") and `/api/generate` (`api` "ollama.generate") go through the
core pipeline, each with its own `api` so usage reports and metrics tell chat traffic from the
one-shot completions editor plugins send. The chat surface also carries the model endpoints
(models.py), answered without an upstream but authenticated like a call: `POST /api/show` and
the refused model management as `local_paths`; `GET`/`HEAD /api/tags`, `/api/version`,
`GET /api/ps` and `DELETE /api/delete` as `local_routes`. Both stream NDJSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from gateway.config import OllamaApiConfig
from gateway.core.answer import Answer
from gateway.core.call import Call
from gateway.errors import GatewayError
from gateway.models import ModelCatalogue
from gateway.surfaces.ollama import errors
from gateway.surfaces.ollama.models import LocalAnswer, ModelDirectory, delete_refusal, refusals
from gateway.surfaces.ollama.parse import API_CHAT, API_GENERATE, parse_chat, parse_generate
from gateway.surfaces.ollama.render import render_answer
from gateway.surfaces.ollama.stream import NdjsonStream

CHAT_PATH = "/api/chat"
GENERATE_PATH = "/api/generate"
SHOW_PATH = "/api/show"
NDJSON = b"application/x-ndjson"


class _OllamaSurface:
    """What both endpoints share: rendering, errors, NDJSON."""

    stream_content_type = NDJSON

    def __init__(self, catalogue: ModelCatalogue) -> None:
        self._catalogue = catalogue
        self.local_paths: Mapping[str, LocalAnswer] = {}
        self.local_routes: Mapping[tuple[str, str], LocalAnswer] = {}

    def render_answer(self, call: Call, answer: Answer) -> bytes:
        return render_answer(call, answer)

    def stream_renderer(self, call: Call) -> NdjsonStream:
        return NdjsonStream(call)

    def render_error(self, error: GatewayError) -> tuple[int, dict[str, str], bytes]:
        return errors.render_error(error)


class OllamaChat(_OllamaSurface):
    api = API_CHAT
    paths = frozenset({CHAT_PATH})

    def __init__(self, catalogue: ModelCatalogue, directory: ModelDirectory) -> None:
        super().__init__(catalogue)
        self.directory = directory
        self.local_paths = {SHOW_PATH: directory.show, **refusals()}
        self.local_routes = {
            ("GET", "/api/tags"): directory.tags,
            ("HEAD", "/api/tags"): directory.tags,
            ("GET", "/api/version"): directory.version,
            ("HEAD", "/api/version"): directory.version,
            ("GET", "/api/ps"): directory.ps,
            ("DELETE", "/api/delete"): delete_refusal(),
        }

    def parse(self, raw: bytes) -> Call:
        return parse_chat(raw, self._catalogue)


class OllamaGenerate(_OllamaSurface):
    api = API_GENERATE
    paths = frozenset({GENERATE_PATH})

    def parse(self, raw: bytes) -> Call:
        return parse_generate(raw, self._catalogue)


def ollama_surfaces(config: OllamaApiConfig, catalogue: ModelCatalogue,
                    servable: Iterable[str]) -> tuple[OllamaChat, OllamaGenerate]:
    """Both surfaces, built at start; `servable` are the canonical models some provider
    serves (what /api/tags lists)."""
    directory = ModelDirectory(catalogue, servable, config)
    return OllamaChat(catalogue, directory), OllamaGenerate(catalogue)
