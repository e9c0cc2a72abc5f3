"""SSE parsing and per-chunk decoding into canonical chunks, without a network. Bytes are
checked as the OpenAI Chat surface renders them (the canonical dialect's own wire form)."""

import asyncio
import json
from collections.abc import AsyncIterator

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.config import load_config
from gateway.core.answer import TextRun
from gateway.core.call import Call
from gateway.errors import UpstreamError
from gateway.models import ResolvedModel
from gateway.providers import Provider, build_provider
from gateway.providers.stream import StreamDecoder, sse_batches
from gateway.reasoning_memory import ReasoningMemory
from gateway.surfaces.openai_chat.parse import ChatOptions
from gateway.surfaces.openai_chat.render import ChatStream
from gateway.thinking import Thinking


class StreamTranslator:
    """A provider's decoder followed by the OpenAI Chat renderer: upstream events in, the
    bytes an OpenAI client receives out (None: nothing sent)."""

    def __init__(self, provider: Provider, public_model: str, thinking: Thinking,
                 client_wants_usage: bool) -> None:
        self.decoder = StreamDecoder(provider, public_model, thinking)
        call = Call("openai.chat", public_model, ResolvedModel(public_model, True), thinking,
                    [], {}, True, None, ChatOptions(client_wants_usage))
        self.renderer = ChatStream(call)

    def __getattr__(self, name: str) -> object:
        return getattr(self.decoder, name)

    def feed(self, data: bytes) -> bytes | None:
        chunk = self.decoder.feed(data)
        if chunk is None:
            return None
        return self.renderer.chunk(chunk) or None

    def feed_batch(self, batch: list[bytes]) -> tuple[bytes, UpstreamError | None]:
        chunks, error = self.decoder.feed_batch(batch)
        return b"".join(self.renderer.chunk(c) for c in chunks), error


async def collect(parts: list[bytes]) -> list[bytes]:
    async def source() -> AsyncIterator[bytes]:
        for part in parts:
            yield part

    return [event async for batch in sse_batches(source()) for event in batch]


async def test_comments_keepalives_and_split_lines_are_handled() -> None:
    stream = [b": keep-alive\n\n", b"data: {\"a\"", b": 1}\n", b"\n: OPENROUTER PROCESSING\n\n",
              b"\r\ndata:{\"b\":2}\r\n\r\n", b"event: x\ndata: [DONE]\n\n"]
    assert await collect(stream) == [b'{"a": 1}', b'{"b":2}', b"[DONE]"]


async def test_events_that_arrive_together_are_batched_together() -> None:
    async def source() -> AsyncIterator[bytes]:
        yield b"data: 1\n\ndata: 2\n\n: ping\n\ndata: 3"
        yield b"\n\n"

    assert [b async for b in sse_batches(source())] == [[b"1", b"2"], [b"3"]]


def test_a_batch_stops_at_an_in_band_error_keeping_what_came_before() -> None:
    t = StreamTranslator(provider("ollama"), "m", Thinking(True), False)
    batch = [chunk({"content": "a"}), b'{"error": "boom"}', chunk({"content": "b"})]
    out, error = t.feed_batch(batch)
    assert out.count(b"data: ") == 1 and b'"a"' in out
    assert error is not None and "boom" in error.message


def provider(kind: str) -> Provider:
    config = load_config(env={"DEEPSEEK_API_KEY": "a", "OPENROUTER_API_KEY": "b",
                              "OLLAMA_API_KEY": "c"})
    return build_provider(kind, config.providers[kind], ReasoningMemory())


def chunk(delta: dict, finish: str | None = None, usage: object = None) -> bytes:
    return orjson.dumps({"id": "c", "object": "chat.completion.chunk", "model": "up",
                         "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                         "usage": usage})


def test_ollama_parallel_tool_calls_at_index_zero_are_reindexed() -> None:
    t = StreamTranslator(provider("ollama"), "deepseek-v4-flash", Thinking(True), False)
    fragments = [
        {"index": 0, "id": "call_a", "type": "function",
         "function": {"name": "f", "arguments": ""}},
        {"index": 0, "function": {"arguments": "{\"x\":1}"}},
        {"index": 0, "id": "call_b", "type": "function",
         "function": {"name": "g", "arguments": ""}},
        {"index": 0, "function": {"arguments": "{\"y\":2}"}},
    ]
    indexes = []
    for fragment in fragments:
        out = t.feed(chunk({"tool_calls": [fragment]}))
        assert out is not None
        sent = orjson.loads(out[len(b"data: "):])
        indexes.append(sent["choices"][0]["delta"]["tool_calls"][0]["index"])
    assert indexes == [0, 0, 1, 1]


def test_interleaved_compliant_tool_calls_keep_their_indexes() -> None:
    t = StreamTranslator(provider("deepseek"), "m", Thinking(True), False)
    fragments = [{"index": 0, "id": "a", "function": {"name": "f", "arguments": ""}},
                 {"index": 1, "id": "b", "function": {"name": "g", "arguments": ""}},
                 {"index": 0, "function": {"arguments": "{}"}},
                 {"index": 1, "function": {"arguments": "{}"}}]
    seen = []
    for fragment in fragments:
        sent = orjson.loads(t.feed(chunk({"tool_calls": [fragment]}))[6:])  # type: ignore[index]
        seen.append(sent["choices"][0]["delta"]["tool_calls"][0]["index"])
    assert seen == [0, 1, 0, 1]


def test_reasoning_delta_is_renamed_and_model_is_public() -> None:
    t = StreamTranslator(provider("openrouter"), "deepseek-v4-flash", Thinking(True), False)
    sent = orjson.loads(t.feed(chunk({"reasoning": "hm"}))[6:])  # type: ignore[index]
    assert sent["choices"][0]["delta"] == {"reasoning_content": "hm"}
    assert sent["model"] == "deepseek-v4-flash"
    assert sent.get("usage") is None
    assert t.first_token_at is not None


def test_usage_chunk_is_hidden_unless_the_client_asked() -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    usage_chunk = orjson.dumps({"id": "c", "choices": [], "usage": usage})
    hidden = StreamTranslator(provider("deepseek"), "m", Thinking(True), False)
    assert hidden.feed(usage_chunk) is None
    assert hidden.usage is not None and hidden.usage.total_tokens == 5
    shown = StreamTranslator(provider("deepseek"), "m", Thinking(True), True)
    out = shown.feed(usage_chunk)
    assert out is not None and orjson.loads(out[6:])["usage"]["total_tokens"] == 5
    # other chunks carry usage: null, as OpenAI's clients expect with include_usage
    plain = shown.feed(chunk({"content": "x"}))
    assert plain is not None and orjson.loads(plain[6:])["usage"] is None


@pytest.mark.parametrize("name", ["deepseek", "openrouter"])
def test_a_shown_usage_chunk_is_in_openais_dialect_whatever_the_provider_sent(name: str) -> None:
    """Each provider's usage fields become DeepSeek's plus OpenAI's details (what SDKs read),
    computed only when the chunk is shown: a hidden one never needs them."""
    usage = ({"prompt_tokens": 10, "completion_tokens": 4, "prompt_cache_hit_tokens": 6,
              "prompt_cache_miss_tokens": 4,
              "completion_tokens_details": {"reasoning_tokens": 3}} if name == "deepseek" else
             {"prompt_tokens": 10, "completion_tokens": 4, "cost": 0.01,
              "prompt_tokens_details": {"cached_tokens": 6},
              "completion_tokens_details": {"reasoning_tokens": 3}})
    usage_chunk = orjson.dumps({"id": "c", "model": "m", "choices": [], "usage": usage})
    out = StreamTranslator(provider(name), "m", Thinking(True), True).feed(usage_chunk)
    assert out is not None
    assert orjson.loads(out[6:])["usage"] == {
        "prompt_tokens": 10, "completion_tokens": 4, "total_tokens": 14,
        "prompt_cache_hit_tokens": 6, "prompt_cache_miss_tokens": 4,
        "prompt_tokens_details": {"cached_tokens": 6},
        "completion_tokens_details": {"reasoning_tokens": 3}}
    hidden = StreamDecoder(provider(name), "m", Thinking(True)).feed(usage_chunk)
    assert hidden is not None and hidden.usage is not None
    assert ChatStream(Call("openai.chat", "m", ResolvedModel("m", True), Thinking(True), [], {},
                           True, None, ChatOptions(False))).chunk(hidden) == b""
    assert hidden.native["usage"]["total_tokens"] == 14  # read later: converted then


@pytest.mark.parametrize(
    ("kind", "raw"),
    [("openrouter", b'{"id": "c", "error": {"code": 502, "message": "Provider returned error"},'
                    b' "choices": [{"index": 0, "delta": {"content": ""},'
                    b' "finish_reason": "error"}]}'),
     ("ollama", b'{"error": "an error was encountered while running the model"}')],
)
def test_in_band_stream_errors_raise(kind: str, raw: bytes) -> None:
    t = StreamTranslator(provider(kind), "m", Thinking(True), False)
    with pytest.raises(UpstreamError) as info:
        t.feed(raw)
    assert info.value.code == "upstream_stream_error"
    assert kind in info.value.message


def test_garbage_chunk_is_an_invalid_answer() -> None:
    t = StreamTranslator(provider("deepseek"), "m", Thinking(True), False)
    with pytest.raises(UpstreamError, match="not JSON"):
        t.feed(b"<html>")


def test_done_marks_the_end_without_output() -> None:
    t = StreamTranslator(provider("deepseek"), "m", Thinking(True), False)
    assert t.feed(b"[DONE]") is None
    assert t.done


def test_a_chunk_already_in_the_canonical_dialect_is_relayed_byte_for_byte() -> None:
    t = StreamTranslator(provider("deepseek"), "up", Thinking(True), False)
    raw = chunk({"reasoning_content": "hm", "content": None})
    out = t.feed(raw)
    assert out == b"data: " + raw + b"\n\n"
    renamed = StreamTranslator(provider("deepseek"), "deepseek-v4-flash", Thinking(True), False)
    out = renamed.feed(raw)
    assert out is not None and orjson.loads(out[6:])["model"] == "deepseek-v4-flash"


_line_text = st.text(alphabet=st.characters(blacklist_characters="\r\n",
                                            blacklist_categories=("Cs",)))
_event_lines = st.lists(st.one_of(
    st.builds(lambda space, text: b"data:" + (b" " if space else b"") + text.encode(),
              st.booleans(), _line_text),
    st.sampled_from([b": keep-alive", b"event: x", b"id: 7", b"data: a\ndata: b",
                     b"data: [DONE]", b"data: x\r", b"", b"\ndata: y"]),
), min_size=1, max_size=6)


@settings(max_examples=300, deadline=None)
@given(reads=st.lists(_event_lines, min_size=1, max_size=4))
def test_whole_event_reads_parse_as_the_same_as_byte_by_byte(
    reads: list[list[bytes]],
) -> None:
    """However the reads split the events, the payloads are the same (whole-event reads take
    the splitter's per-event path, single bytes its per-line one)."""
    chunks = [b"".join(event + b"\n\n" for event in events) for events in reads]
    one_by_one = [bytes([b]) for b in b"".join(chunks)]
    assert asyncio.run(collect(chunks)) == asyncio.run(collect(one_by_one))


# ---- the fast path for plain text chunks -------------------------------------------------

_piece = st.one_of(st.text(min_size=0, max_size=8),
                   st.sampled_from(['"', "\\", "\n", "é", "😀", '"content":"x', " upon"]))
_event = st.one_of(
    st.tuples(st.sampled_from(["content", "reasoning_content"]), _piece),
    st.sampled_from([("finish", "stop"), ("usage", ""), ("role", ""), ("null_content", "")]),
)


# the public name, or a provider's own (the decoder renames it)
_upstream_model = st.sampled_from(["deepseek-v4-flash", "deepseek-flash"])


def _native_event(kind: str, text: str, model: str = "deepseek-v4-flash") -> bytes:
    head = {"id": "b", "object": "chat.completion.chunk", "created": 1767225600,
            "model": model}
    choice: dict[str, object] = {"index": 0, "delta": {}, "logprobs": None,
                                 "finish_reason": None}
    if kind in ("content", "reasoning_content"):
        choice["delta"] = {kind: text}
    elif kind == "finish":
        choice["finish_reason"] = text
    elif kind == "role":
        choice["delta"] = {"role": "assistant", "content": ""}
    elif kind == "null_content":
        choice["delta"] = {"content": None, "reasoning_content": "r"}
    if kind == "usage":
        return orjson.dumps({**head, "choices": [], "usage": {"prompt_tokens": 1,
                                                               "completion_tokens": 2}})
    return orjson.dumps({**head, "choices": [choice]})


@settings(max_examples=300, deadline=None)
@given(events=st.lists(_event, min_size=1, max_size=12), exclude=st.booleans(),
       model=_upstream_model)
def test_the_fast_path_decodes_every_chunk_as_the_full_decode_does(
    events: list[tuple[str, str]], exclude: bool, model: str
) -> None:
    """One decoder learns shapes and takes its fast path; each chunk is checked against a full
    decode of the same bytes: same deltas, bytes, native form, and the same running state."""
    deepseek = provider("deepseek")
    thinking = Thinking(True, exclude=exclude)
    fast = StreamDecoder(deepseek, "deepseek-v4-flash", thinking)
    full = StreamDecoder(deepseek, "deepseek-v4-flash", thinking)
    for kind, text in events:
        data = _native_event(kind, text, model)
        got, want = fast.feed(data), full._decode(data)  # full: never takes the fast path
        assert got is not None
        assert (got.deltas, got.usage) == (want.deltas, want.usage)
        # the bytes a Chat client gets: the full decode's own, or its native form's
        assert got.raw == (want.raw or orjson.dumps(want.native)) or (
            got.raw is None and want.raw is None)
        assert got.native == want.native
    assert (fast.relayed_chars, fast._reasoning, fast.finished, fast.first_token_at is None,
            fast.usage) == (full.relayed_chars, full._reasoning, full.finished,
                            full.first_token_at is None, full.usage)


def test_plain_text_chunks_after_the_second_take_the_fast_path() -> None:
    decoder = StreamDecoder(provider("deepseek"), "deepseek-v4-flash", Thinking(True))
    decoder.feed(_native_event("content", "Once"))
    decoder.feed(_native_event("content", " more"))
    chunk = decoder.feed(_native_event("content", " upon"))
    assert chunk is not None and chunk._native is None  # not parsed
    assert chunk.deltas[0].content == " upon" and chunk.native["choices"][0]["delta"] == {
        "content": " upon"}
    escaped = decoder.feed(_native_event("content", 'a "quote"'))
    assert escaped is not None and escaped._native is not None  # the full decode
    assert escaped.deltas[0].content == 'a "quote"'


def test_a_compact_chunk_without_escapes_teaches_its_shape_at_once() -> None:
    """No backslash and the text's key once: the chunk proves its own shape, so the next
    plain chunk of that shape is already fast; each phase (reasoning, content) learns its own."""
    decoder = StreamDecoder(provider("deepseek"), "deepseek-v4-flash", Thinking(True))
    decoder.feed(_native_event("reasoning_content", "Hm."))
    decoder.feed(_native_event("content", "Once"))
    second = decoder.feed(_native_event("content", " upon"))
    assert isinstance(second, TextRun) and second._native is None  # the fast path
    prefix = (b'{"id":"b","object":"chat.completion.chunk","created":1767225600'
              b',"model":"deepseek-v4-flash","choices":[{"index":0,"delta":{')
    suffix = b'"},"logprobs":null,"finish_reason":null}]}'
    assert decoder._shapes == [
        (prefix + b'"content":"', suffix, len(prefix) + 11, len(suffix), 0, False, None),
        (prefix + b'"reasoning_content":"', suffix, len(prefix) + 21, len(suffix), 0, True,
         None)]


def test_a_model_the_upstream_names_otherwise_is_learned_with_the_public_name() -> None:
    """Every provider has its own name for the model (DeepSeek's `deepseek-flash`): a chunk
    changed only by the rename still teaches its shape, and the fast path sends its events
    under the public name, as the full decode would."""
    decoder = StreamDecoder(provider("deepseek"), "deepseek-v4-flash", Thinking(True))
    first = decoder.feed(_native_event("content", "Once", model="deepseek-flash"))
    assert first is not None and first.raw is None  # rewritten: not relayed as it came
    second = decoder.feed(_native_event("content", " upon", model="deepseek-flash"))
    assert isinstance(second, TextRun) and second._native is None  # the fast path
    assert second.raw == _native_event("content", " upon")  # the public name's bytes
    assert second.native["model"] == "deepseek-v4-flash"
    assert second.deltas[0].content == " upon" and decoder.relayed_chars == 9
    chunks, _ = decoder.feed_batch([_native_event("content", t, model="deepseek-flash")
                                    for t in (" a", " time")])
    assert len(chunks) == 1 and chunks[0].raw == b"\n\ndata: ".join(
        _native_event("content", t) for t in (" a", " time"))


@pytest.mark.parametrize("event", [
    # a second "model" key, nested: which one the rename is for is not plain from the bytes
    _native_event("content", "one", model="m2").replace(b'"id"', b'"x":{"model":"m2"},"id"'),
    # spaced: the key is not found as `"model":"m2"`
    _native_event("content", "one", model="m2").replace(b'"model":"m2"', b'"model": "m2"'),
    # a backslash in the envelope (learned only from two chunks, never with a rename)
    _native_event("content", "one", model="m2").replace(b'"id":"b"', b'"id":"b\\u0062"'),
])
def test_a_rename_that_is_not_plain_from_the_bytes_is_never_learned(event: bytes) -> None:
    decoder = StreamDecoder(provider("deepseek"), "deepseek-v4-flash", Thinking(True))
    for text in (b"one", b"two", b"six", b"ten"):
        chunk = decoder.feed(event.replace(b"one", text))
        assert chunk is not None and chunk.native["model"] == "deepseek-v4-flash"
    assert decoder._shapes == []


def _escaped(data: bytes) -> bytes:
    """The event with a backslash in its id: no longer a proof of its own shape."""
    return data.replace(b'"id":"b"', b'"id":"b\\u0062"')


def test_a_chunk_with_an_escape_is_learned_only_once_a_second_chunk_proves_it() -> None:
    decoder = StreamDecoder(provider("deepseek"), "deepseek-v4-flash", Thinking(True))
    decoder.feed(_escaped(_native_event("content", "Once")))
    second = decoder.feed(_escaped(_native_event("content", " upon")))
    assert second is not None and second._native is not None  # the full decode
    third = decoder.feed(_escaped(_native_event("content", " a")))
    assert isinstance(third, TextRun) and third.deltas[0].content == " a"


def test_the_same_text_again_proves_no_shape() -> None:
    """A repeated chunk is no proof (its text might be found in the wrong place): the chunk
    after it, with other text, is."""
    decoder = StreamDecoder(provider("deepseek"), "deepseek-v4-flash", Thinking(True))
    for text in ("ha", "ha", "ha"):
        decoder.feed(_escaped(_native_event("content", text)))
    assert decoder._shapes == []
    decoder.feed(_escaped(_native_event("content", "!")))
    assert len(decoder._shapes) == 1


def test_an_error_field_or_a_second_key_is_never_learned_at_once() -> None:
    for event in (_native_event("content", "one").replace(b'"id"', b'"error":null,"id"'),
                  _native_event("content", "one").replace(b'"id"', b'"x":{"content":1},"id"')):
        decoder = StreamDecoder(provider("deepseek"), "deepseek-v4-flash", Thinking(True))
        decoder.feed(event)
        assert decoder._shapes == []


def test_text_found_outside_the_delta_is_never_learned() -> None:
    """The delta's own text is spaced (not where the learner looks); the same text in compact
    form elsewhere in the chunk must not become the fast path's text."""
    decoder = StreamDecoder(provider("deepseek"), "deepseek-v4-flash", Thinking(True))
    head = b'{"model":"deepseek-v4-flash","choices":[{"index":0,"delta":{"content": "'

    def event(delta_text: bytes, decoy: bytes) -> bytes:
        return head + delta_text + b'"}}],"x":{"content":"' + decoy + b'"}}'

    for delta_text, decoy in ((b"one", b"one"), (b"one", b"two"), (b"one", b"six"),
                              (b"one", b"ten")):
        chunk = decoder.feed(event(delta_text, decoy))
        assert chunk is not None and chunk.deltas[0].content == "one"
    assert decoder._shapes == []


_envelope = st.sampled_from(["compact", "escaped", "decoy", "spaced"])


def _variant(data: bytes, envelope: str) -> bytes:
    if envelope == "escaped":
        return _escaped(data)
    if envelope == "decoy":  # the delta's own text, compact, outside the delta
        native = orjson.loads(data)
        delta = (native.get("choices") or [{}])[0].get("delta", {})
        text = delta.get("content") or delta.get("reasoning_content") or ""
        return data[:-1] + b',"x":{"content":' + orjson.dumps(text) + b"}}"
    if envelope == "spaced":
        return json.dumps(orjson.loads(data)).encode()
    return data


@settings(max_examples=300, deadline=None)
@given(events=st.lists(st.tuples(_event, _envelope), min_size=1, max_size=14),
       exclude=st.booleans(), reads=st.lists(st.integers(1, 5), min_size=1, max_size=6),
       wants_usage=st.booleans(), model=_upstream_model)
def test_batches_decode_and_render_as_the_full_decode_of_each_event(
    events: list[tuple[tuple[str, str], str]], exclude: bool, reads: list[int],
    wants_usage: bool, model: str,
) -> None:
    """Events fed in batches (runs of fast-path events become one TextRun) give the deltas,
    the Chat client's bytes and the running state that a full decode of each event gives."""
    deepseek = provider("deepseek")
    thinking = Thinking(True, exclude=exclude)
    fast = StreamTranslator(deepseek, "deepseek-v4-flash", thinking, wants_usage)
    full = StreamTranslator(deepseek, "deepseek-v4-flash", thinking, wants_usage)
    datas = [_variant(_native_event(kind, text, model), envelope)
             for (kind, text), envelope in events]
    got_deltas, got_bytes, at = [], b"", 0
    while at < len(datas):
        size = reads[at % len(reads)]
        chunks, error = fast.decoder.feed_batch(datas[at:at + size])
        assert error is None
        got_deltas += [delta for chunk in chunks for delta in chunk.deltas]
        got_bytes += b"".join(fast.renderer.chunk(chunk) for chunk in chunks)
        at += size
    want = [full.decoder._decode(data) for data in datas]
    assert got_deltas == [delta for chunk in want for delta in chunk.deltas]
    assert got_bytes == b"".join(full.renderer.chunk(chunk) for chunk in want)
    f, w = fast.decoder, full.decoder
    assert (f.relayed_chars, f._reasoning, f.finished, f.first_token_at is None, f.usage) == (
        w.relayed_chars, w._reasoning, w.finished, w.first_token_at is None, w.usage)


def test_a_run_renders_for_every_surface_as_its_events_one_by_one() -> None:
    """A TextRun's deltas are its events' in order; Chat sends each event as it came."""
    decoder = StreamDecoder(provider("deepseek"), "deepseek-v4-flash", Thinking(True))
    texts = ["a", "é", " b", "c"]
    chunks, _ = decoder.feed_batch([_native_event("content", t) for t in ["x", *texts]])
    assert [d.content for c in chunks[1:] for d in c.deltas] == texts
    run = chunks[-1]  # "a", then a run from "é" (not ASCII: the run's own check hands it on)
    assert isinstance(run, TextRun) and len(run.events) == 3
    for wants_usage in (False, True):
        t = StreamTranslator(provider("deepseek"), "deepseek-v4-flash", Thinking(True),
                             wants_usage)
        whole = t.renderer.chunk(run)
        one_by_one = b"".join(t.renderer.chunk(TextRun([event], run._start, run._end, 0, False))
                              for event in run.events)
        assert whole == one_by_one and whole.count(b"data: ") == len(run.events)
