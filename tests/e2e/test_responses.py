"""The official openai SDK's `responses.*` through a real gateway to the simulated providers:
the OpenAI Responses surface on the same core (failover, metering, thinking memory) as the
other APIs, and its stored responses in a real Postgres (and SQLite) database."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.db import pg
from tests.db.pg import query
from tests.e2e.conftest import GatewayFactory, RunningGateway, Upstreams
from tests.upstream.common import Faults

PROVIDERS = ["deepseek", "openrouter", "ollama"]
MODEL = "deepseek-v4-flash"
MASTER = "sk-master-" + secrets.token_hex(12)
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather for a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}}

pg_database = pg.pg_database
pg_url = pg.pg_url


def sent(upstreams: Upstreams, provider: str = "deepseek") -> dict[str, Any]:
    """The last chat request the simulated provider received from the gateway."""
    body: dict[str, Any] = upstreams[provider].requests[-1].json
    return body


def events_of(gateway: RunningGateway) -> list[Any]:
    return [e for e in gateway.sink.events if e.request_id]


@pytest.fixture
def db(pg_url: str) -> str:
    query(pg_url, "TRUNCATE responses, api_keys, teams")
    return pg_url


def stored_gateway(make_gateway: GatewayFactory, tmp_path: Path, database: str) -> RunningGateway:
    """A gateway with a master key whose database (Postgres URL or SQLite path) keeps
    responses and gateway keys."""
    spool = tmp_path / f"spool-{secrets.token_hex(3)}"
    if database.startswith("postgres"):
        yaml = f"metering: {{flush_interval: 0.02, spool_path: {spool}}}\n"
        env = {"DATABASE_URL": database}
    else:
        yaml = (f"metering: {{enabled: true, flush_interval: 0.02, spool_path: {spool}, "
                f"sqlite_path: {database}}}\n")
        env = {}
    return make_gateway(["deepseek"], yaml=yaml, env={"GATEWAY_MASTER_KEY": MASTER, **env})


def new_key(gateway: RunningGateway, name: str) -> str:
    response = httpx.post(gateway.url + "/admin/keys", json={"name": name}, timeout=20,
                          headers={"authorization": f"Bearer {MASTER}"})
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


# ---- answers -----------------------------------------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_create_through_each_provider(
    make_gateway: GatewayFactory, upstreams: Upstreams, provider: str
) -> None:
    gateway = make_gateway([provider])
    response = gateway.openai().responses.create(
        model=MODEL, instructions="be brief", input="hello there",
        reasoning={"effort": "none"}, max_output_tokens=100, metadata={"run": "e2e"})
    assert response.status == "completed" and response.object == "response"
    assert response.id.startswith("resp_") and response.model == MODEL
    assert response.output_text == "echo: hello there"
    assert [item.type for item in response.output] == ["message"]
    assert response.metadata == {"run": "e2e"} and response.instructions == "be brief"
    assert response.usage is not None
    assert response.usage.output_tokens == 3  # "echo: hello there", a token a word
    assert response.usage.input_tokens == response.usage.total_tokens - 3
    upstream = sent(upstreams, provider)
    assert upstream["messages"][0] == {"role": "system", "content": "be brief"}
    assert upstream["messages"][-1] == {"role": "user", "content": "hello there"}
    event = events_of(gateway)[-1]
    assert (event.api, event.status, event.provider) == ("openai.responses", "ok", provider)
    assert event.model == MODEL and event.thinking == "off"


@pytest.mark.parametrize("provider", PROVIDERS)
def test_stream_helpers_assemble_the_text_and_the_reasoning(
    make_gateway: GatewayFactory, upstreams: Upstreams, provider: str
) -> None:
    gateway = make_gateway([provider])
    deltas: list[str] = []
    with gateway.openai().responses.stream(
        model=MODEL, input="stream this please", reasoning={"effort": "high"},
    ) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    assert "".join(deltas) == "echo: stream this please" == final.output_text
    assert [item.type for item in final.output] == ["reasoning", "message"]
    reasoning = final.output[0]
    assert reasoning.content is not None  # type: ignore[union-attr]
    assert reasoning.content[0].text == "thinking about: stream this please"  # type: ignore[union-attr]
    assert final.status == "completed" and final.usage is not None
    if provider != "ollama":  # Ollama does not count reasoning tokens apart
        assert final.usage.output_tokens_details.reasoning_tokens == 5  # "thinking about: .."
    assert upstreams[provider].requests[-1].json["stream"] is True
    event = events_of(gateway)[-1]
    assert (event.api, event.stream, event.status) == ("openai.responses", True, "ok")


def test_stream_event_sequence_is_the_responses_one(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(["deepseek"])
    with gateway.http() as http, http.stream(
            "POST", "/v1/responses",
            json={"model": MODEL, "input": "two words", "stream": True}) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/event-stream")
        body = reply.read().decode()
    frames = [f for f in body.split("\n\n") if f and not f.startswith(":")]
    names = [f.split("\n")[0].removeprefix("event: ") for f in frames]
    data = [json.loads(f.split("\n")[1].removeprefix("data: ")) for f in frames]
    assert [d["sequence_number"] for d in data] == list(range(len(data)))
    assert [d["type"] for d in data] == names
    collapsed = [n for i, n in enumerate(names) if i == 0 or n != names[i - 1]]
    assert collapsed == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.reasoning_text.delta",
        "response.reasoning_text.done", "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done",
        "response.completed",
    ]
    assert "[DONE]" not in body


def test_a_function_tool_loop_replays_reasoning(
    make_gateway: GatewayFactory, upstreams: Upstreams
) -> None:
    """Thinking mode on DeepSeek: the tool-call turn's reasoning must come back (else its
    400); it does, from the reasoning item the client sends back."""
    gateway = make_gateway(["deepseek"])
    client = gateway.openai()
    first_input: list[Any] = [{"role": "user", "content": "weather in Paris?"}]
    first = client.responses.create(model=MODEL, input=first_input, tools=[WEATHER])
    calls = [item for item in first.output if item.type == "function_call"]
    assert [item.type for item in first.output] == ["reasoning", "function_call"]
    assert calls[0].name == "get_weather" and calls[0].call_id
    assert json.loads(calls[0].arguments) == {"echo": "weather in Paris?"}
    history = [*first_input, *[item.model_dump(exclude_none=True) for item in first.output],
               {"type": "function_call_output", "call_id": calls[0].call_id,
                "output": "sunny, 21 C"}]
    second = client.responses.create(model=MODEL, input=history, tools=[WEATHER])
    assert second.status == "completed" and second.output_text
    assistant = sent(upstreams)["messages"][1]
    assert assistant["role"] == "assistant"
    assert assistant["reasoning_content"] == "thinking about: weather in Paris?"
    assert assistant["tool_calls"][0]["id"] == calls[0].call_id
    assert sent(upstreams)["messages"][2] == {
        "role": "tool", "tool_call_id": calls[0].call_id, "content": "sunny, 21 C"}


def test_built_in_tools_are_refused_naming_them(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(["deepseek"])
    with pytest.raises(openai.BadRequestError) as refused:
        gateway.openai().responses.create(model=MODEL, input="hi",
                                          tools=[WEATHER, {"type": "web_search"}])
    assert refused.value.status_code == 400
    body: Any = refused.value.body
    assert "web_search" in body["message"] and body["param"] == "tools[1].type"
    assert events_of(gateway)[-1].status == "refused"


def test_json_schema_output_is_response_format(
    make_gateway: GatewayFactory, upstreams: Upstreams
) -> None:
    gateway = make_gateway(["deepseek"])
    schema = {"type": "object", "properties": {"echo": {"type": "string"}}}
    response = gateway.openai().responses.create(
        model=MODEL, input="structured", reasoning={"effort": "none"},
        text={"format": {"type": "json_schema", "name": "echo", "schema": schema}})
    assert json.loads(response.output_text) == {"echo": "structured"}
    assert sent(upstreams)["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "echo", "schema": schema}}


def test_max_output_tokens_makes_an_incomplete_response(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(["deepseek"])
    response = gateway.openai().responses.create(
        model=MODEL, input="one two three four five six", max_output_tokens=2,
        reasoning={"effort": "none"})
    assert response.status == "incomplete"
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"


def test_failover_before_the_first_token(
    make_gateway: GatewayFactory, upstreams: Upstreams
) -> None:
    upstreams.deepseek.faults = Faults(status=503)
    gateway = make_gateway(["deepseek", "openrouter"])
    with gateway.openai().responses.stream(model=MODEL, input="fail over") as stream:
        final = stream.get_final_response()
    assert final.output_text == "echo: fail over"
    assert events_of(gateway)[-1].provider == "openrouter"


def test_a_failure_mid_stream_ends_with_response_failed(
    make_gateway: GatewayFactory, upstreams: Upstreams
) -> None:
    upstreams.deepseek.faults = Faults(cut_after_chunks=4)
    gateway = make_gateway(["deepseek"])
    with gateway.http() as http, http.stream(
            "POST", "/v1/responses",
            json={"model": MODEL, "input": "cut me off please", "stream": True}) as reply:
        body = reply.read().decode()
    frames = [f for f in body.split("\n\n") if f and not f.startswith(":")]
    kinds = [f.split("\n")[0].removeprefix("event: ") for f in frames]
    assert kinds[-2:] == ["error", "response.failed"]
    failed = json.loads(frames[-1].split("\n")[1].removeprefix("data: "))
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"]["code"]
    assert "response.completed" not in kinds
    assert events_of(gateway)[-1].status == "interrupted"


def test_errors_are_openai_shaped(make_gateway: GatewayFactory) -> None:
    gateway = make_gateway(["deepseek"])
    with pytest.raises(openai.NotFoundError) as missing:
        gateway.openai().responses.create(model="no-such-model", input="hi")
    assert missing.value.status_code == 404
    with gateway.http() as http:
        reply = http.post("/v1/responses", json={"model": MODEL})
        assert reply.status_code == 400
        assert reply.json()["error"]["param"] == "input"
        assert reply.json()["error"]["type"] == "invalid_request_error"
        assert http.get("/v1/responses").status_code == 405


# ---- stored responses ----------------------------------------------------------------------


def test_previous_response_id_retrieve_and_delete_on_postgres(
    make_gateway: GatewayFactory, upstreams: Upstreams, tmp_path: Path, db: str
) -> None:
    gateway = stored_gateway(make_gateway, tmp_path, db)
    client = gateway.openai(api_key=MASTER)
    first = client.responses.create(model=MODEL, input="hello", instructions="first rules",
                                    reasoning={"effort": "none"})
    second = client.responses.create(model=MODEL, input="and again",
                                     previous_response_id=first.id,
                                     instructions="second rules", reasoning={"effort": "none"})
    assert second.previous_response_id == first.id
    assert sent(upstreams)["messages"] == [
        {"role": "system", "content": "second rules"},  # instructions are not carried over
        {"role": "user", "content": "hello"},
        {"role": "assistant", "content": "echo: hello"},
        {"role": "user", "content": "and again"},
    ]
    again = client.responses.retrieve(second.id)
    assert again.output_text == second.output_text and again.id == second.id
    items = client.responses.input_items.list(second.id)
    assert [item.type for item in items.data] == ["message"]
    assert items.data[0].content[0].text == "and again"  # type: ignore[union-attr]
    rows = query(db, "SELECT id, key_id, status FROM responses ORDER BY created_at")
    assert [(r["id"], r["key_id"], r["status"]) for r in rows] == [
        (first.id, None, "completed"), (second.id, None, "completed")]

    client.responses.delete(first.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(first.id)
    with pytest.raises(openai.BadRequestError) as gone:
        client.responses.create(model=MODEL, input="more", previous_response_id=first.id)
    assert "not found" in str(gone.value)


def test_store_false_and_streams_are_stored_as_asked(
    make_gateway: GatewayFactory, tmp_path: Path, db: str
) -> None:
    gateway = stored_gateway(make_gateway, tmp_path, db)
    client = gateway.openai(api_key=MASTER)
    unstored = client.responses.create(model=MODEL, input="forget me", store=False)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(unstored.id)
    with client.responses.stream(model=MODEL, input="keep me") as stream:
        streamed = stream.get_final_response()
    kept = client.responses.retrieve(streamed.id)
    assert kept.output_text == "echo: keep me" and kept.status == "completed"
    assert [item.type for item in kept.output] == ["reasoning", "message"]


def test_another_key_sees_404(make_gateway: GatewayFactory, tmp_path: Path, db: str) -> None:
    gateway = stored_gateway(make_gateway, tmp_path, db)
    alice, bob = new_key(gateway, "alice"), new_key(gateway, "bob")
    mine = gateway.openai(api_key=alice).responses.create(model=MODEL, input="mine")
    assert gateway.openai(api_key=alice).responses.retrieve(mine.id).id == mine.id
    other = gateway.openai(api_key=bob)
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.input_items.list(mine.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(mine.id)
    with pytest.raises(openai.BadRequestError):
        other.responses.create(model=MODEL, input="steal", previous_response_id=mine.id)
    with pytest.raises(openai.NotFoundError):  # nor the master key: it made none
        gateway.openai(api_key=MASTER).responses.retrieve(mine.id)
    assert gateway.openai(api_key=alice).responses.retrieve(mine.id).id == mine.id
    with httpx.Client(base_url=gateway.url, timeout=20) as http:
        assert http.get(f"/v1/responses/{mine.id}").status_code == 401


def test_stored_responses_on_sqlite(make_gateway: GatewayFactory, tmp_path: Path) -> None:
    gateway = stored_gateway(make_gateway, tmp_path, str(tmp_path / "gateway.db"))
    client = gateway.openai(api_key=MASTER)
    first = client.responses.create(model=MODEL, input="hello sqlite")
    second = client.responses.create(model=MODEL, input="next", previous_response_id=first.id)
    assert client.responses.retrieve(second.id).previous_response_id == first.id
    client.responses.delete(second.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(second.id)


def test_without_a_database_nothing_is_stored_and_retrieval_says_why(
    make_gateway: GatewayFactory,
) -> None:
    gateway = make_gateway(["deepseek"])  # test gateways have no database unless asked
    client: OpenAI = gateway.openai()
    response = client.responses.create(model=MODEL, input="hello")
    assert response.to_dict()["store"] is False
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.retrieve(response.id)
    assert "needs its database" in str(missing.value)
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model=MODEL, input="more", previous_response_id=response.id)
    assert "needs its database" in str(refused.value)


def test_input_items_page_like_openai_lists(make_gateway: GatewayFactory,
                                             tmp_path: Path) -> None:
    gateway = stored_gateway(make_gateway, tmp_path, str(tmp_path / "pages.db"))
    client = gateway.openai(api_key=MASTER)
    words = ["one", "two", "three", "four", "five"]
    response = client.responses.create(
        model=MODEL, input=[{"role": "user", "content": w} for w in words])
    newest_first = client.responses.input_items.list(response.id, limit=2)
    assert [i.content[0].text for i in newest_first.data] == ["five", "four"]  # type: ignore[union-attr]
    assert newest_first.has_more is True
    every = [i.content[0].text  # type: ignore[union-attr]
             for i in client.responses.input_items.list(response.id, limit=2, order="asc")]
    assert every == words  # the SDK follows `after` through the pages
    with gateway.http() as http:
        bad = http.get(f"/v1/responses/{response.id}/input_items?limit=500",
                       headers={"authorization": f"Bearer {MASTER}"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"


def test_a_keys_limits_apply_to_responses(make_gateway: GatewayFactory, tmp_path: Path,
                                          db: str) -> None:
    gateway = stored_gateway(make_gateway, tmp_path, db)
    reply = httpx.post(gateway.url + "/admin/keys", json={"name": "slow", "rpm": 1},
                       headers={"authorization": f"Bearer {MASTER}"}, timeout=20)
    key = reply.json()["key"]
    client = gateway.openai(api_key=key)
    client.responses.create(model=MODEL, input="first")
    with pytest.raises(openai.RateLimitError) as limited:
        client.responses.create(model=MODEL, input="second")
    assert limited.value.response.headers.get("retry-after")
    refused = events_of(gateway)[-1]
    assert (refused.api, refused.status, refused.key_id) == (
        "openai.responses", "refused", reply.json()["id"])
