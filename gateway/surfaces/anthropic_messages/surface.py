"""The Anthropic Messages surface as the core sees it, plus its two side routes.

`POST /v1/messages` goes through the core pipeline (`paths`). `POST /v1/messages/count_tokens`
(Claude Code breaks without it) is answered here without an upstream (`local_paths`), and so is
`GET /v1/models` in Anthropic's shape when the request carries `anthropic-version`
(`model_listing`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

import orjson

from gateway.config import GatewayConfig
from gateway.core.answer import Answer
from gateway.core.call import Call
from gateway.errors import GatewayError
from gateway.models import ModelCatalogue
from gateway.surfaces.anthropic_messages import errors
from gateway.surfaces.anthropic_messages.models import ClaudeModels, anthropic_model_list
from gateway.surfaces.anthropic_messages.parse import API, parse_messages
from gateway.surfaces.anthropic_messages.render import options_of, render_message
from gateway.surfaces.anthropic_messages.signatures import ThinkingSigner
from gateway.surfaces.anthropic_messages.stream import MessagesStream
from gateway.surfaces.anthropic_messages.tokens import TokenCounter, default_counter

PATHS = frozenset({"/v1/messages"})
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"


class AnthropicMessages:
    api = API
    paths = PATHS
    stream_content_type = b"text/event-stream"

    def __init__(
        self,
        catalogue: ModelCatalogue,
        models: ClaudeModels,
        signer: ThinkingSigner,
        counter: TokenCounter,
        ping_interval: float = 10.0,
    ) -> None:
        self.ping_interval = ping_interval
        self._catalogue = catalogue
        self._models = models
        self._signer = signer
        self._counter = counter
        self.local_paths: Mapping[str, Callable[[bytes], bytes]] = {
            COUNT_TOKENS_PATH: self.count_tokens,
        }

    @classmethod
    def from_config(
        cls,
        config: GatewayConfig,
        catalogue: ModelCatalogue,
        counter: TokenCounter | None = None,
    ) -> AnthropicMessages:
        """Built at start: refuses a prefix map naming unknown models (ConfigError)."""
        models = ClaudeModels(config.anthropic.models)
        models.check(catalogue)
        secret = config.anthropic.signing_secret
        master = config.master_key
        signer = ThinkingSigner.from_secrets(
            secret.get_secret_value() if secret else None,
            master.get_secret_value() if master else None,
        )
        exact = config.anthropic.exact_token_counts
        return cls(catalogue, models, signer, counter or default_counter(exact),
                   config.anthropic.ping_interval)

    def parse(self, raw: bytes) -> Call:
        return parse_messages(raw, self._catalogue, self._models, self._signer,
                              counter=self._counter)

    def render_answer(self, call: Call, answer: Answer) -> bytes:
        return render_message(call, answer, self._signer)

    def stream_renderer(self, call: Call) -> MessagesStream:
        return MessagesStream(call, self._signer, self.ping_interval)

    def render_error(self, error: GatewayError) -> tuple[int, dict[str, str], bytes]:
        return errors.render_error(error)

    def count_tokens(self, raw: bytes) -> bytes:
        """The answer of `count_tokens`: `{"input_tokens": N}`; raises like `parse`."""
        call = parse_messages(raw, self._catalogue, self._models, self._signer,
                              counter=self._counter, count_only=True)
        return orjson.dumps({"input_tokens": options_of(call).input_tokens})

    def model_listing(self, headers: Mapping[str, str], names: Iterable[str]) -> bytes | None:
        """`GET /v1/models` in Anthropic's shape for Anthropic clients (they send
        `anthropic-version`); None lets another shape answer."""
        if not any(name.lower() == "anthropic-version" for name in headers):
            return None
        return anthropic_model_list(names)
