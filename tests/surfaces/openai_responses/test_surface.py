"""The surface's own step in the pipeline (`prepare`: owner, storing, previous_response_id)
and what its renderers hand to the store, on a real SQLite store."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from gateway.core.answer import Answer, Choice, Chunk, Delta
from gateway.core.surface import PreparesCalls
from gateway.db.engine import async_url
from gateway.db.store import UsageStore
from gateway.errors import GatewayError, InvalidRequest
from gateway.keys.principal import MASTER, Principal
from gateway.surfaces.openai_chat.surface import OpenAIChat
from gateway.surfaces.openai_responses.store import ResponseStore
from gateway.surfaces.openai_responses.surface import PATHS, OpenAIResponses
from tests.surfaces.openai_responses.support import CATALOGUE, body, options, parse

ALICE = Principal(key_id="key_alice")
BOB = Principal(key_id="key_bob")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ResponseStore]:
    usage = UsageStore(async_url(None, tmp_path / "gateway.db"))
    yield ResponseStore(usage, timedelta(days=30))
    await usage.close()


@pytest.fixture
def surface(store: ResponseStore) -> OpenAIResponses:
    return OpenAIResponses(CATALOGUE, store)


def _answer(text: str) -> Answer:
    return Answer("x", 0, [Choice(0, text, None, [], "stop")], None, {})


def test_the_surface_declares_what_the_core_needs() -> None:
    surface = OpenAIResponses(CATALOGUE)
    assert isinstance(surface, PreparesCalls)
    assert not isinstance(OpenAIChat(CATALOGUE), PreparesCalls)
    assert surface.api == "openai.responses" and "/v1/responses" in PATHS
    assert {(path, method) for path, _, method in surface.routes} >= {
        ("/v1/responses/{response_id}", "GET"), ("/v1/responses/{response_id}", "DELETE"),
        ("/v1/responses/{response_id}/input_items", "GET")}


async def test_prepare_sets_the_owner_and_whether_to_store(surface: OpenAIResponses) -> None:
    call = parse(body())
    await surface.prepare(call, ALICE)
    assert options(call).owner == "key_alice" and options(call).storing is True
    unstored = parse(body(store=False))
    await surface.prepare(unstored, MASTER)
    assert options(unstored).owner is None and options(unstored).storing is False
    nowhere = parse(body())
    await OpenAIResponses(CATALOGUE).prepare(nowhere, ALICE)
    assert options(nowhere).storing is False


async def test_a_kept_response_continues_for_its_owner_only(surface: OpenAIResponses,
                                                           store: ResponseStore) -> None:
    first = parse(body(input="first question", instructions="Old rules."))
    await surface.prepare(first, ALICE)
    surface.render_answer(first, _answer("first answer"))
    first_id = options(first).response_id

    second = parse(body(input="second question", instructions="New rules.",
                        previous_response_id=first_id))
    await surface.prepare(second, ALICE)
    assert second.messages == [
        {"role": "system", "content": "New rules."},
        {"role": "user", "content": "first question"},
        {"role": "assistant", "content": "first answer"},
        {"role": "user", "content": "second question"},
    ]
    renderer = surface.stream_renderer(second)
    renderer.chunk(Chunk([Delta(0, content="second answer")], None, {}))
    renderer.finish(None)
    kept = await store.get(options(second).response_id, "key_alice")
    assert kept is not None
    assert [i["content"][0]["text"] for i in kept.history] == ["first question",
                                                               "first answer"]
    assert kept.response["previous_response_id"] == first_id
    assert kept.response["store"] is True

    third = parse(body(input="third", previous_response_id=options(second).response_id))
    await surface.prepare(third, ALICE)
    assert [m["content"] for m in third.messages] == [
        "first question", "first answer", "second question", "second answer", "third"]

    stolen = parse(body(input="mine now?", previous_response_id=first_id))
    with pytest.raises(InvalidRequest) as refused:
        await surface.prepare(stolen, BOB)
    assert refused.value.param == "previous_response_id"
    assert refused.value.code == "previous_response_not_found"
    assert first_id in refused.value.message


async def test_without_a_store_previous_response_id_says_why() -> None:
    call = parse(body(previous_response_id="resp_1"))
    with pytest.raises(InvalidRequest) as refused:
        await OpenAIResponses(CATALOGUE).prepare(call, ALICE)
    assert "needs its database" in refused.value.message


async def test_a_store_that_cannot_answer_is_a_503(tmp_path: Path) -> None:
    usage = UsageStore(async_url(None, tmp_path / "never.db"), auto_migrate=False)
    surface = OpenAIResponses(CATALOGUE, ResponseStore(usage, timedelta(days=1)))
    with pytest.raises(GatewayError) as unavailable:
        await surface.prepare(parse(body(previous_response_id="resp_1")), ALICE)
    assert unavailable.value.status == 503 and unavailable.value.code == "store_unavailable"
    await usage.close()


async def test_start_and_close(surface: OpenAIResponses, caplog: pytest.LogCaptureFixture,
                               ) -> None:
    await surface.start()
    await surface.close()
    without = OpenAIResponses(CATALOGUE)
    with caplog.at_level(logging.INFO, logger="gateway.responses"):
        await without.start()
    assert any("stored responses are off" in r.getMessage() for r in caplog.records)
    await without.close()
