"""The OpenAI Agents SDK (`openai-agents`), whose default model speaks the Responses API, running
an agent with one function tool through a real gateway to the simulated DeepSeek.

DeepSeek is scripted: the user's turn gets a call to the tool, the turn carrying its result
gets the final text. Tracing is off for the run (the SDK would otherwise send traces to
OpenAI).
"""

from __future__ import annotations

from agents import Agent, OpenAIResponsesModel, RunConfig, Runner, function_tool
from openai import AsyncOpenAI

from tests.e2e.conftest import GatewayFactory, Upstreams
from tests.upstream.common import Script, last_turn_role

MODEL = "deepseek-v4-flash"
FINAL = "It is sunny in Paris, 21 C."


def _agent(url: str, calls: list[str]) -> Agent:
    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city right now."""
        calls.append(city)
        return f"sunny, 21 C in {city}"

    client = AsyncOpenAI(base_url=url + "/v1", api_key="unused-on-loopback", max_retries=0)
    return Agent(name="weather", instructions="Answer with the weather tool.",
                 tools=[get_weather], model=OpenAIResponsesModel(MODEL, client))


def _script(upstreams: Upstreams) -> None:
    upstreams.deepseek.script = Script(tool="get_weather", arguments={"city": "Paris"},
                                       text=FINAL)


def test_an_agent_calls_its_tool_and_answers(
    make_gateway: GatewayFactory, upstreams: Upstreams
) -> None:
    gateway = make_gateway(["deepseek"])
    _script(upstreams)
    calls: list[str] = []
    result = Runner.run_sync(_agent(gateway.url, calls), "What is the weather in Paris?",
                             run_config=RunConfig(tracing_disabled=True))
    assert calls == ["Paris"]
    assert result.final_output == FINAL
    chats = [r.json for r in upstreams.deepseek.requests if r.path.endswith("/chat/completions")]
    assert [last_turn_role(body["messages"]) for body in chats] == ["user", "tool"]
    assert chats[0]["messages"][0] == {"role": "system", "content": "Answer with the weather tool."}
    replayed = chats[1]["messages"][2]
    assert replayed["role"] == "assistant" and replayed["reasoning_content"]  # DeepSeek's rule
    events = [e for e in gateway.sink.events if e.request_id]
    assert [(e.api, e.status) for e in events] == [("openai.responses", "ok")] * 2


async def test_a_streamed_agent_run(make_gateway: GatewayFactory, upstreams: Upstreams) -> None:
    gateway = make_gateway(["deepseek"])
    _script(upstreams)
    calls: list[str] = []
    run = Runner.run_streamed(_agent(gateway.url, calls), "Weather in Paris, streamed?",
                              run_config=RunConfig(tracing_disabled=True))
    kinds = [event.type async for event in run.stream_events()]
    assert calls == ["Paris"]
    assert run.final_output == FINAL
    assert "raw_response_event" in kinds and "run_item_stream_event" in kinds
