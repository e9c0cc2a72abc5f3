import orjson
import pytest

from gateway.config import load_config
from gateway.errors import InvalidRequest, ModelNotFound
from gateway.models import ModelCatalogue
from gateway.surfaces.openai_chat.errors import error_object
from gateway.surfaces.openai_chat.parse import parse_chat_request


@pytest.fixture
def catalogue() -> ModelCatalogue:
    return ModelCatalogue(load_config(env={}))


def parse(body: object, catalogue: ModelCatalogue):  # type: ignore[no-untyped-def]
    return parse_chat_request(orjson.dumps(body), catalogue)


MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("name", "canonical", "thinking"),
    [
        ("deepseek-v4-flash", "deepseek-v4-flash", True),
        ("deepseek-v4-pro", "deepseek-v4-pro", True),
        ("deepseek-chat", "deepseek-v4-flash", False),
        ("deepseek-reasoner", "deepseek-v4-flash", True),
        ("deepseek/deepseek-v4-flash", "deepseek-v4-flash", True),
        ("deepseek-v4-flash:cloud", "deepseek-v4-flash", True),
        ("deepseek-flash", "deepseek-v4-flash", True),
    ],
)
def test_names_resolve_to_canonical_model_and_thinking(
    catalogue: ModelCatalogue, name: str, canonical: str, thinking: bool
) -> None:
    req = parse({"model": name, "messages": MESSAGES}, catalogue)
    assert req.model.canonical == canonical
    assert req.thinking.enabled is thinking
    assert req.requested_model == name


def test_explicit_thinking_beats_the_legacy_name(catalogue: ModelCatalogue) -> None:
    req = parse(
        {"model": "deepseek-chat", "messages": MESSAGES, "thinking": {"type": "enabled"}},
        catalogue,
    )
    assert req.thinking.enabled is True


def test_unknown_model_is_404_model_not_found(catalogue: ModelCatalogue) -> None:
    with pytest.raises(ModelNotFound) as info:
        parse({"model": "gpt-9", "messages": MESSAGES}, catalogue)
    assert info.value.status == 404
    assert error_object(info.value)["error"]["code"] == "model_not_found"


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model parameter"),
        (b'{"model": 7, "messages": []}', "'model' must be a string"),
        (b'{"model": "deepseek-v4-flash"}', "'messages' is a required property"),
        (b'{"model": "deepseek-v4-flash", "messages": "hi"}', "non-empty array"),
        (b'{"model": "deepseek-v4-flash", "messages": [3]}', "'messages[0]' must be an object"),
        (b'{"model": "deepseek-v4-flash", "messages": [{"role": "bot", "content": "x"}]}',
         "'messages[0].role'"),
        (b'{"model": "deepseek-v4-flash", "messages": [{"role": "user"}]}',
         "'messages[0].content' is required"),
        # an unhashable role is a 400 too, not a TypeError (a 500)
        (b'{"model": "deepseek-v4-flash", "messages": [{"role": ["user"], "content": "x"}]}',
         "'messages[0].role'"),
        (b'{"model": "deepseek-v4-flash", "messages": [{"role": {}, "content": "x"}]}',
         "'messages[0].role'"),
        (b'{"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "x"},'
         b' {"role": "user", "content": 5}]}', "'messages[1].content' must be a string"),
        (b'{"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "x"},'
         b' {"role": "assistant", "content": null, "tool_calls": {}}]}',
         "'messages[1].tool_calls' must be an array"),
        # several misfits: the first in the documented field order is named, whatever the
        # body's order
        (b'{"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "x"}],'
         b' "user": 5, "temperature": "hot", "stream": 1}', "'stream' must be a boolean"),
        (b'{"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "x"}],'
         b' "stream": "yes"}', "'stream' must be a boolean"),
        (b'{"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "x"}],'
         b' "temperature": "hot"}', "'temperature' must be a number"),
        (b'{"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "x"}],'
         b' "max_tokens": true}', "'max_tokens' must be an integer"),
        (b'{"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "x"}],'
         b' "n": 0}', "'n' must be between 1 and 128"),
        (b'{"model": "deepseek-v4-flash", "messages": [{"role": "user", "content": "x"}],'
         b' "n": 100000}', "'n' must be between 1 and 128"),
    ],
)
def test_malformed_requests_say_what_is_wrong(
    catalogue: ModelCatalogue, raw: bytes, fragment: str
) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_chat_request(raw, catalogue)
    assert fragment in info.value.message
    assert info.value.status == 400


def test_include_usage_only_counts_for_streams(catalogue: ModelCatalogue) -> None:
    body = {"model": "deepseek-v4-flash", "messages": MESSAGES,
            "stream_options": {"include_usage": True}}
    assert parse(body, catalogue).options.include_usage is False
    assert parse({**body, "stream": True}, catalogue).options.include_usage is True
