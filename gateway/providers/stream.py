"""Reading an upstream's stream: server-sent events in, canonical chunks out.

`SSESplitter` turns the upstream's byte stream into event payloads, skipping the comment and
keep-alive lines that DeepSeek (`: keep-alive`) and OpenRouter (`: OPENROUTER PROCESSING`)
send. `StreamDecoder` rewrites each chunk into the canonical dialect as it passes (reasoning in
`reasoning_content`, repaired tool-call indices, the canonical model name), keeping the
upstream's bytes when nothing changed, and remembers usage, progress and reasoning. Most chunks
of a stream are one text delta in an otherwise identical envelope: once such a chunk went out
unchanged and its shape was proven (`_learn`), its followers are decoded by comparing bytes,
without a JSON parse, and a row of them is one `TextRun` (`feed_batch`).
Rendering for a client is the surfaces' job.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.core.answer import Chunk, Delta, TextRun, ToolCallDelta
from gateway.errors import UpstreamError
from gateway.providers.base import Provider
from gateway.thinking import Thinking
from gateway.usage import Usage

DONE = b"[DONE]"
# What must not be in a string's bytes for them to be its value as they are: a quote (the
# string would end there), a backslash (an escape) or a control character (invalid JSON).
_NOT_PLAIN = re.compile(rb'["\\\x00-\x1f]')
_TEXT_FIELDS = (b'"content":"', b'"reasoning_content":"')
_CANDIDATES = 2  # unproven shapes kept (e.g. a first chunk with a role, then plain ones)
# Shapes learned at most: a first chunk with a role and text, then reasoning, then content.
_SHAPES = 3
# Single bytes looked for as ints: `b"\r" in chunk` first tries the needle as an index, and
# on Python 3.11 the TypeError made and cleared for that cost ~1,800 instructions a call, a
# twelfth of a relayed read; an int is one memchr.
_CR, _LF, _BACKSLASH = ord("\r"), ord("\n"), ord("\\")
# The fast path's common text is ASCII that JSON keeps as it is (no quote, backslash or control
# character): none of these bytes, so its length is its count of characters. Other text is
# `_plain_text`'s to read.
_NOT_PLAIN_ASCII = re.compile(rb"[^ !#-\[\]-\x7f]")
# A learned shape: (prefix, suffix, len(prefix), len(suffix), choice index, reasoning?, the
# prefix to send instead when the upstream names the model otherwise, else None).
Shape = tuple[bytes, bytes, int, int, int, bool, bytes | None]
_NO_SHAPE: Shape = (b"", b"", 0, 0, 0, False, None)  # matched by identity only


class SSESplitter:
    """Server-sent events in, per network read the `data` payloads of the events it completed.

    Events that arrived together are relayed together (one write instead of one per event)
    without ever waiting for more. Splits lines itself, so no line-length limit applies. The
    common read, whole events of one `data:` line each with nothing held from the last read,
    is split per event rather than per line.
    """

    __slots__ = ("_data_lines", "_pending")

    def __init__(self) -> None:
        self._pending = b""
        self._data_lines: list[bytes] = []

    def feed(self, chunk: bytes) -> list[bytes]:
        if not self._pending and not self._data_lines and chunk.endswith(b"\n\n") \
                and _CR not in chunk:
            # Whole events: each block before a blank line is one event's lines. What follows
            # the last blank line is at most one more blank line, which completes nothing.
            if chunk.startswith(b"data: "):
                # Every event is one "data: " line when no newline is left in the pieces
                # between the "\n\ndata: " separators (one memchr, where counting newlines
                # went byte by byte).
                events = chunk[6:-2].split(b"\n\ndata: ")
                if _LF not in b"".join(events):
                    return events
            blocks = chunk.split(b"\n\n")
            del blocks[-1]
            batch: list[bytes] = []
            for block in blocks:
                if block.startswith(b"data: ") and _LF not in block:
                    batch.append(block[6:])
                else:
                    batch += self._lines(block.split(b"\n"))
                    if self._data_lines:
                        batch.append(self._take_event())
            return batch
        self._pending += chunk
        if _LF not in chunk:
            return []
        *lines, self._pending = self._pending.split(b"\n")
        return self._lines(lines)

    def one_event(self, chunk: bytes) -> bytes | None:
        """The payload when `chunk` is one whole event of one `data: ` line and nothing is
        held from earlier reads (what `feed` would return alone), else None: the running
        stream's common read, checked without building the batch."""
        if (self._pending or self._data_lines or not chunk.startswith(b"data: ")
                or chunk.find(b"\n") != len(chunk) - 2 or not chunk.endswith(b"\n\n")
                or _CR in chunk):
            return None
        return chunk[6:-2]

    def close(self) -> list[bytes]:
        """The stream's end: an event that was never ended by a blank line still counts."""
        return [self._take_event()] if self._data_lines else []

    def _lines(self, lines: list[bytes]) -> list[bytes]:
        batch: list[bytes] = []
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            if not line:
                if self._data_lines:
                    batch.append(self._take_event())
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data_lines.append(value[1:] if value.startswith(b" ") else value)
            # comments (":..."), "event:", "id:" and "retry:" lines carry nothing we relay
        return batch

    def _take_event(self) -> bytes:
        lines, self._data_lines = self._data_lines, []
        return lines[0] if len(lines) == 1 else b"\n".join(lines)


async def sse_batches(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[bytes]]:
    """`SSESplitter` over an iterator of reads: one batch per read that completed events."""
    splitter = SSESplitter()
    async for chunk in chunks:
        if batch := splitter.feed(chunk):
            yield batch
    if tail := splitter.close():
        yield tail


def _text_run(events: list[bytes], shape: Shape) -> TextRun:
    renamed = shape[6]
    if renamed is None:
        return TextRun(events, shape[2], shape[3], shape[4], shape[5])
    cut = shape[2]
    return TextRun([renamed + event[cut:] for event in events], len(renamed), shape[3],
                   shape[4], shape[5])


class StreamDecoder:
    """Per-attempt state of one streamed answer."""

    def __init__(self, provider: Provider, public_model: str, thinking: Thinking) -> None:
        self.provider = provider
        self.public_model = public_model
        self.thinking = thinking
        self.usage: Usage | None = None
        self.done = False
        self.finished = False
        self.cut_short: str | None = None  # the finish reason, if the provider cut it short
        self.first_token_at: float | None = None
        self.relayed_chars = 0
        field = provider.reasoning_field
        self._rename = field if field != "reasoning_content" else None
        self._reasoning: list[str] = []
        self._tool_calls: list[dict[str, Any]] = []
        # Tool-call index repair: Ollama streams parallel calls all at index 0 with different
        # ids. Each new id gets the next index of its choice; id-less fragments follow the
        # last id seen at their upstream index. For compliant providers this is the identity.
        self._index_of_id: dict[tuple[int, str], int] = {}
        self._current: dict[tuple[int, int], int] = {}
        self._next_index: dict[int, int] = {}
        # The fast path's shapes (see `_learn`): (prefix, suffix, their lengths, choice index,
        # reasoning?), and the candidates for them, with the text they were seen with.
        self._shapes: list[Shape] = []
        self._candidates: list[tuple[bytes, bytes, int, bool, bytes]] = []
        self._renamed = ""  # the last `_decode`'s upstream model name, if only it changed

    def feed_batch(self, batch: list[bytes]) -> tuple[list[Chunk], UpstreamError | None]:
        """Decode events that arrived together; stops at [DONE] or at an in-band error,
        returning what was decoded before it. Events in a row that take the fast path (see
        `feed`) become one `TextRun`. Runs per read, so the fast path is written out here,
        its names bound once, and an event that continues a run is checked against the
        run's own shape first."""
        out: list[Chunk] = []
        shapes = self._shapes
        not_plain = _NOT_PLAIN_ASCII.search
        run: list[bytes] = []  # the fast path's events in a row, all of `shape`
        shape = _NO_SHAPE
        prefix, suffix, start, end, _, reasoning, _ = shape
        chars = 0  # the ASCII texts' characters (the others' are counted by `_plain_text`)
        try:
            for data in batch:
                if run:
                    n = len(data) - end
                    if (n > start and data.startswith(prefix) and data.endswith(suffix)
                            and not_plain(data, start, n) is None):
                        run.append(data)
                        chars += n - start
                        if reasoning:
                            self._reasoning.append(data[start:n].decode())
                        continue
                    out.append(_text_run(run, shape))
                    run = []
                for learned in shapes:
                    if data.startswith(learned[0]) and data.endswith(learned[1]):
                        n = len(data) - learned[3]
                        if n > learned[2] and not_plain(data, learned[2], n) is None:
                            chars += n - learned[2]
                            if learned[5]:
                                self._reasoning.append(data[learned[2]:n].decode())
                        elif not self._plain_text(data[learned[2]:n], learned[5]):
                            continue
                        shape = learned
                        prefix, suffix, start, end, _, reasoning, _ = shape
                        run = [data]
                        break
                if run:
                    continue
                if data == DONE:
                    self.done = True
                    break
                chunk = self._decode(data)
                out.append(chunk)
                if len(shapes) < _SHAPES and (chunk.raw is not None or self._renamed):
                    self._learn(chunk, data)
        except UpstreamError as err:
            if run:
                out.append(_text_run(run, shape))
            return out, err
        finally:
            self.relayed_chars += chars
        if run:
            out.append(_text_run(run, shape))
        return out, None

    def feed(self, data: bytes) -> Chunk | None:
        """Decode one event payload, or None for the end marker. The fast path: an event
        that is byte for byte a learned shape (`_learn`) but for plain text at the shape's
        place is that text, and goes out as its bytes, unparsed (a `TextRun` of one)."""
        if self._shapes and (shape := self.passes(data)) is not None:
            return _text_run([data], shape)
        if data == DONE:
            self.done = True
            return None
        chunk = self._decode(data)
        if len(self._shapes) < _SHAPES and (chunk.raw is not None or self._renamed):
            self._learn(chunk, data)
        return chunk

    def passes(self, data: bytes) -> Shape | None:
        """The learned shape `data` takes the fast path by, its text counted (and kept, if
        reasoning) as `feed` counts it; None when it must be decoded."""
        for learned in self._shapes:
            if data.startswith(learned[0]) and data.endswith(learned[1]):
                n = len(data) - learned[3]
                if n > learned[2] and _NOT_PLAIN_ASCII.search(data, learned[2], n) is None:
                    self.relayed_chars += n - learned[2]
                    if learned[5]:
                        self._reasoning.append(data[learned[2]:n].decode())
                    return learned
                if self._plain_text(data[learned[2]:n], learned[5]):
                    return learned
        return None

    def _plain_text(self, value: bytes, reasoning: bool) -> bool:
        """Whether a learned shape's text bytes are the text as they are (no quote, backslash
        or control character, and UTF-8; else the full decode runs), counting it if so.
        Nothing else in the chunk can differ from the learned one (usage, a finish reason, an
        error, tool calls all change the prefix or suffix), so it needs no rewrite."""
        if not value or _NOT_PLAIN.search(value) is not None:
            return False
        try:
            text = value.decode()
        except UnicodeDecodeError:
            return False
        self.relayed_chars += len(text)
        if reasoning:
            self._reasoning.append(text)
        return True

    def _learn(self, chunk: Chunk, raw: bytes) -> None:
        """Learn the shape of chunks like this one, which went out unchanged, if it carried only
        one choice's text (content or reasoning): the bytes before its text (the prefix: id,
        model, the choice's index and every other field, up to the opening quote) and after it
        (the suffix, from the closing quote). Only compact JSON whose text needs no escaping is
        learned; anything else keeps the full decode.

        Learned at once when the chunk itself proves where its text is: it has no backslash
        (so every quote in it opens or closes a string) and the text's key (`"content"`) occurs
        once, followed by `:"` and the text and a quote. Then that key is the delta's own (the
        delta has it, and no other bytes could spell it), its value is a whole string that is
        the text, and a chunk that is these bytes but for other plain text there parses the
        same but for that value. An error field is never learned.

        Otherwise it is learned from two chunks: the first makes a candidate; a later one that
        is the candidate's bytes but for other plain text, and decodes as the same delta with
        that text, proves it. Why that is proof: a plain text between `":"` and `"` is a whole
        JSON string, a value; the two chunks parse alike but for that one value, and the
        delta's text changed with it, so it is the delta's text.

        A chunk whose only change was the model's name (`raw` the upstream's bytes, `native`
        renamed: a provider's own name often differs from the public one) is learned the same
        way, with the prefix to send in its place (`_renamed_prefix`)."""
        if len(chunk.deltas) != 1 or chunk.usage is not None:
            return
        delta = chunk.deltas[0]
        if delta.tool_calls is not None or delta.finish_reason is not None:
            return
        text, reasoning = ((delta.content, False) if delta.reasoning is None
                           else (delta.reasoning, True))
        if not text or (delta.content is not None and reasoning):
            return
        encoded = text.encode()
        if _NOT_PLAIN.search(encoded) is not None:
            return
        field = _TEXT_FIELDS[reasoning]
        needle = field + encoded + b'"'
        if (_BACKSLASH not in raw and raw.find(b'"error"') < 0
                and raw.count(field[:-2]) == 1):
            at = raw.find(needle)
            if at >= 0:
                start = at + len(field)
                self._add_shape(raw[:start], raw[start + len(encoded):], delta.index, reasoning)
            return
        candidates = self._candidates
        for candidate in candidates:
            prefix, suffix, index, kind, seen = candidate
            if (kind == reasoning and index == delta.index and encoded != seen
                    and raw.startswith(prefix) and raw.endswith(suffix)
                    and raw[len(prefix):len(raw) - len(suffix)] == encoded):
                candidates.remove(candidate)
                self._add_shape(prefix, suffix, index, reasoning)
                return
        at = raw.find(needle)
        if at < 0 or raw.find(needle, at + 1) >= 0:
            return
        start = at + len(field)
        candidate = (raw[:start], raw[start + len(encoded):], delta.index, reasoning, encoded)
        if any(shape[:2] == candidate[:2] for shape in self._shapes):
            return
        if len(candidates) >= _CANDIDATES:
            del candidates[0]
        candidates.append(candidate)

    def _add_shape(self, prefix: bytes, suffix: bytes, index: int, reasoning: bool) -> None:
        """A proven shape, first in the order shapes are tried: a stream's text comes in
        phases (reasoning, then content), the newest the likeliest."""
        renamed = None
        if self._renamed:
            renamed = self._renamed_prefix(prefix, suffix)
            if renamed is None:
                return
        shape = (prefix, suffix, len(prefix), len(suffix), index, reasoning, renamed)
        if shape not in self._shapes:
            self._shapes.insert(0, shape)

    def _renamed_prefix(self, prefix: bytes, suffix: bytes) -> bytes | None:
        """The prefix with the upstream's model name replaced by the public one, when that
        is unambiguous: no backslash (every quote opens or closes a string), `"model"` once
        in the envelope, as the key of the upstream's name (so it is the top-level key the
        full decode renames), and both names plain JSON strings; else None (not learned)."""
        upstream, public = self._renamed.encode(), self.public_model.encode()
        key = b'"model":"' + upstream + b'"'
        if (_BACKSLASH in prefix or _BACKSLASH in suffix or prefix.count(key) != 1
                or prefix.count(b'"model"') + suffix.count(b'"model"') != 1
                or _NOT_PLAIN.search(upstream) is not None
                or _NOT_PLAIN.search(public) is not None):
            return None
        return prefix.replace(key, b'"model":"' + public + b'"')

    def _decode(self, data: bytes) -> Chunk:
        try:
            native = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise self.provider.invalid_answer("the stream sent a chunk that is not JSON") from None
        if not isinstance(native, dict):
            raise self.provider.invalid_answer("the stream sent a chunk that is not an object")
        if "error" in native:
            error = self.provider.error_in_chunk(native)
            if error is not None:
                raise error
        # Keep the upstream's bytes while nothing changes: a chunk already in the canonical
        # dialect (DeepSeek's own, under the public name) can go out as the bytes that came in.
        changed = False
        model = native.get("model")
        renamed = model != self.public_model
        if renamed:
            native["model"] = self.public_model
        deltas: list[Delta] = []
        choices = native.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if isinstance(choice, dict):
                    delta, choice_changed = self._decode_choice(choice)
                    deltas.append(delta)
                    if choice_changed:
                        changed = True
        usage: Usage | None = None
        raw_usage = native.get("usage")
        if raw_usage:
            usage = self.usage = self.provider.parse_usage(raw_usage)
            changed = True
        # The upstream's own name for the model, when that was all that changed (`_learn`).
        self._renamed = model if renamed and not changed and isinstance(model, str) else ""
        # A usage the provider reported becomes OpenAI's shape when a surface reads `native`.
        return Chunk(deltas, usage, native, None if changed or renamed else data,
                     openai_usage=True)

    def _decode_choice(self, choice: dict[str, Any]) -> tuple[Delta, bool]:
        """Translate one choice's delta in place; True if anything changed. Called per event,
        so kept free of method calls on the common path."""
        changed = False
        index = choice.get("index", 0)
        if not isinstance(index, int):
            index = 0
        finish_reason = choice.get("finish_reason")
        if finish_reason:
            self.finished = True
            if finish_reason in self.provider.cut_short_reasons:
                self.cut_short = finish_reason
        text = thought = None
        calls: list[ToolCallDelta] | None = None
        delta = choice.get("delta")
        if isinstance(delta, dict):
            if self._rename is not None and self._rename in delta:
                delta["reasoning_content"] = delta.pop(self._rename)
                changed = True
            if "reasoning_details" in delta:
                del delta["reasoning_details"]
                changed = True
            if self.thinking.exclude and "reasoning_content" in delta:
                del delta["reasoning_content"]
                changed = True
            reasoning = delta.get("reasoning_content")
            content = delta.get("content")
            tool_calls = delta.get("tool_calls")
            if reasoning or content or tool_calls:
                if self.first_token_at is None:
                    self.first_token_at = time.monotonic()
                if isinstance(reasoning, str):
                    self._reasoning.append(reasoning)
                    self.relayed_chars += len(reasoning)
                    thought = reasoning
                if isinstance(content, str):
                    self.relayed_chars += len(content)
                    text = content
            if isinstance(tool_calls, list):
                calls = []
                if self._repair_tool_calls(index, tool_calls, calls):
                    changed = True
        return Delta(index, text, thought, calls,
                     finish_reason if isinstance(finish_reason, str) else None), changed

    def _repair_tool_calls(
        self, choice_index: int, calls: list[Any], out: list[ToolCallDelta]
    ) -> bool:
        changed = False
        for call in calls:
            if not isinstance(call, dict):
                continue
            upstream_index = call.get("index", 0)
            if not isinstance(upstream_index, int):
                upstream_index = 0
            call_id = call.get("id")
            if isinstance(call_id, str) and call_id:
                key = (choice_index, call_id)
                if key not in self._index_of_id:
                    self._index_of_id[key] = self._next_index.get(choice_index, 0)
                    self._next_index[choice_index] = self._index_of_id[key] + 1
                    self._tool_calls.append({"id": call_id})
                index = self._index_of_id[key]
                self._current[(choice_index, upstream_index)] = index
            else:
                call_id = None
                index = self._current.get((choice_index, upstream_index), upstream_index)
            if call.get("index") != index:
                call["index"] = index
                changed = True
            function = call.get("function")
            name = arguments = None
            if isinstance(function, dict):
                name = function.get("name")
                arguments = function.get("arguments")
                if isinstance(arguments, str):
                    self.relayed_chars += len(arguments)
                else:
                    arguments = None
            out.append(ToolCallDelta(index, call_id, name if isinstance(name, str) else None,
                                     arguments))
        return changed

    def remember_reasoning(self) -> None:
        """Keep this answer's reasoning for later turns that replay its tool calls."""
        if self._tool_calls and self._reasoning:
            self.provider.memory.remember(self._tool_calls, "".join(self._reasoning))
