"""The OpenAI Responses surface as the core and the app see it.

`POST /v1/responses` goes through the core pipeline (`paths`); `prepare` (the core's
`PreparesCalls`) gives each admitted call its owner and, for `previous_response_id`, the
stored conversation it continues. The renderers hand each finished response to the store when
the request asked for `store` and the gateway has a database; `routes` serve the stored ones.
Without a database responses are answered but not stored (their `store` says false), and
`previous_response_id` is a 400 that says why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from gateway.config import GatewayConfig
from gateway.core.answer import Answer
from gateway.core.call import Call
from gateway.db.store import UsageStore
from gateway.errors import GatewayError, InvalidRequest
from gateway.keys.principal import Principal
from gateway.models import ModelCatalogue
from gateway.surfaces.openai_responses import errors
from gateway.surfaces.openai_responses.parse import API, parse_responses, with_history
from gateway.surfaces.openai_responses.render import answer_response, options_of, render_response
from gateway.surfaces.openai_responses.routes import NOT_STORED, ResponseRoutes
from gateway.surfaces.openai_responses.store import Pruner, ResponseStore
from gateway.surfaces.openai_responses.stream import ResponsesStream

log = logging.getLogger("gateway.responses")

PREFIXES = ("/v1/responses", "/responses")
PATHS = frozenset(PREFIXES)


class OpenAIResponses:
    api = API
    paths = PATHS
    stream_content_type = b"text/event-stream"

    def __init__(self, catalogue: ModelCatalogue, store: ResponseStore | None = None,
                 prune_interval: float = 3600.0) -> None:
        self._catalogue = catalogue
        self._store = store
        self._pruner = Pruner(store, prune_interval) if store is not None else None
        self.local_paths: Mapping[str, Callable[[bytes], bytes]] = {}
        self.routes = ResponseRoutes(store).routes(PREFIXES)

    @classmethod
    def from_config(cls, config: GatewayConfig, catalogue: ModelCatalogue,
                    database: UsageStore | None) -> OpenAIResponses:
        """Stored responses live in `database` (the metering one); None: not stored."""
        settings = config.responses
        store = (ResponseStore(database, timedelta(days=settings.store_days))
                 if database is not None else None)
        return cls(catalogue, store, settings.prune_interval)

    async def start(self) -> None:
        if self._pruner is not None:
            self._pruner.start()
        else:
            log.info("stored responses are off: %s", NOT_STORED)

    async def close(self) -> None:
        """Before the database closes: stop pruning, finish the pending writes."""
        if self._pruner is not None:
            await self._pruner.close()
        if self._store is not None:
            await self._store.drain()

    # ---- Surface -------------------------------------------------------------------------

    def parse(self, raw: bytes) -> Call:
        return parse_responses(raw, self._catalogue)

    async def prepare(self, call: Call, principal: Principal) -> None:
        options = options_of(call)
        options.owner = principal.key_id
        options.storing = options.store and self._store is not None
        previous_id = options.previous_response_id
        if previous_id is None:
            return
        if self._store is None:
            raise InvalidRequest(f"previous_response_id: {NOT_STORED}; send the whole "
                                 "conversation as input instead",
                                 param="previous_response_id")
        try:
            previous = await self._store.get(previous_id, options.owner)
        except Exception:
            raise GatewayError("Stored responses cannot be read right now; try again shortly.",
                               status=503, code="store_unavailable") from None
        if previous is None:
            raise InvalidRequest(f"Previous response with id '{previous_id}' not found.",
                                 param="previous_response_id",
                                 code="previous_response_not_found")
        with_history(call, previous.conversation())

    def render_answer(self, call: Call, answer: Answer) -> bytes:
        response = answer_response(call, answer)
        self._keep(call, response)
        return render_response(response)

    def stream_renderer(self, call: Call) -> ResponsesStream:
        return ResponsesStream(call, lambda response: self._keep(call, response))

    def render_error(self, error: GatewayError) -> tuple[int, dict[str, str], bytes]:
        return errors.render_error(error)

    def _keep(self, call: Call, response: dict[str, Any]) -> None:
        options = options_of(call)
        if options.storing and self._store is not None:
            self._store.keep(response, options.owner, options.input_items, options.history)
