"""The request fields `/api/chat` and `/api/generate` share, read into canonical terms.

- `model`: any name the catalogue accepts (`deepseek-v4-flash`, `deepseek-v4-flash:cloud`,
  aliases); Ollama's implied `:latest` tag is dropped when the name is only known without it.
  An unknown name is a 404 worded as Ollama words it ("model ... not found").
- `stream`: true unless false (Ollama streams by default).
- `think`: true | false | "low" | "medium" | "high" | "max" -> the gateway's thinking mode.
  `true` asks for thinking at the provider's default effort; absent keeps the model's default.
- `format`: "json" -> `response_format: json_object`; a JSON schema -> `json_schema` with that
  schema; "" or null -> none.
- `options`: `temperature`, `top_p`, `top_k`, `seed`, `stop`, `presence_penalty`,
  `frequency_penalty` under their canonical names, `num_predict` (when positive) ->
  `max_tokens`; every other option (`num_ctx`, `repeat_penalty`, `mirostat`, ...) is accepted
  and ignored, as are `keep_alive`, `truncate` and `shift`: the models are not local.
- `tools` (chat): function tools, the same shape as OpenAI's (`type` may be left out).
"""

from __future__ import annotations

from typing import Any

from gateway.errors import InvalidRequest, ModelNotFound
from gateway.models import ModelCatalogue, ResolvedModel
from gateway.thinking import DEEPSEEK_EFFORTS, Thinking, default_thinking

_LATEST = ":latest"
_EFFORTS = ("low", "medium", "high", "max")
_NUMBER_OPTIONS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
_INTEGER_OPTIONS = ("seed", "top_k")


def model_name(body: dict[str, Any], field: str = "model") -> str:
    name = body.get(field)
    if not isinstance(name, str) or not name:
        raise InvalidRequest("model is required", param=field)
    return name


def resolve_model(name: str, catalogue: ModelCatalogue) -> ResolvedModel:
    resolved = catalogue.get(name)
    if resolved is None and name.endswith(_LATEST):
        resolved = catalogue.get(name[: -len(_LATEST)])
    if resolved is not None:
        return resolved
    raise ModelNotFound(
        f'model "{name}" not found{catalogue.suggest(name)}: GET /api/tags lists the models '
        "this gateway serves",
        param="model",
    )


def stream_flag(body: dict[str, Any]) -> bool:
    stream = body.get("stream")
    if stream is None:
        return True
    if not isinstance(stream, bool):
        raise InvalidRequest("stream: must be a boolean", param="stream")
    return stream


def thinking(value: Any, default_enabled: bool, default_effort: str | None = None) -> Thinking:
    """`think` to a mode: "medium" is Thinking (High), DeepSeek's nearest level."""
    if value is None:
        return default_thinking(default_enabled, default_effort)
    if value is True:
        return Thinking(enabled=True)
    if value is False:
        return Thinking(enabled=False)
    if isinstance(value, str) and value in _EFFORTS:
        return Thinking(enabled=True, effort=DEEPSEEK_EFFORTS[value])
    raise InvalidRequest(
        f'think: must be true, false, "low", "medium", "high" or "max"; got {value!r}',
        param="think",
    )


def response_format(value: Any) -> dict[str, Any] | None:
    if value is None or value == "":
        return None
    if value == "json":
        return {"type": "json_object"}
    if isinstance(value, dict):
        return {"type": "json_schema", "json_schema": {"name": "response", "schema": value}}
    raise InvalidRequest('format: must be "json" or a JSON schema (an object)', param="format")


def options(value: Any, params: dict[str, Any]) -> None:
    """Write the options the providers understand into `params`; ignore the rest."""
    if value is None:
        return
    if not isinstance(value, dict):
        raise InvalidRequest("options: must be an object", param="options")
    for name in _NUMBER_OPTIONS:
        number = value.get(name)
        if number is not None:
            if not _is_number(number):
                raise InvalidRequest(f"options.{name}: must be a number", param=f"options.{name}")
            params[name] = number
    for name in _INTEGER_OPTIONS:
        integer = value.get(name)
        if integer is not None:
            if not _is_int(integer):
                raise InvalidRequest(f"options.{name}: must be an integer",
                                     param=f"options.{name}")
            params[name] = integer
    limit = value.get("num_predict")
    if limit is not None:
        if not _is_int(limit):
            raise InvalidRequest("options.num_predict: must be an integer",
                                 param="options.num_predict")
        if limit > 0:  # -1 (no limit) and -2 (fill the context) leave it to the provider
            params["max_tokens"] = limit
    stop = value.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise InvalidRequest("options.stop: must be a string or an array of strings",
                                 param="options.stop")
        if stop:
            params["stop"] = stop


def tools(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidRequest("tools: must be an array", param="tools")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(value):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise InvalidRequest(f"{where}: must be an object", param=where)
        kind = tool.get("type", "function")
        if kind != "function":
            raise InvalidRequest(f"{where}.type: only function tools are supported; got {kind!r}",
                                 param=f"{where}.type")
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) \
                or not function["name"]:
            raise InvalidRequest(f"{where}.function.name: a function name is required",
                                 param=f"{where}.function.name")
        spec: dict[str, Any] = {"name": function["name"]}
        description = function.get("description")
        if description is not None:
            if not isinstance(description, str):
                raise InvalidRequest(f"{where}.function.description: must be a string",
                                     param=f"{where}.function.description")
            spec["description"] = description
        parameters = function.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise InvalidRequest(f"{where}.function.parameters: must be a JSON schema (object)",
                                 param=f"{where}.function.parameters")
        spec["parameters"] = parameters or {"type": "object", "properties": {}}
        out.append({"type": "function", "function": spec})
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
