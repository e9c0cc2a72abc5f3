"""What the gateway tells Ollama clients about its models, and the model management it refuses.

Answered by the gateway itself, without an upstream (the surface's local paths and routes):

- `GET /api/tags`: every name the gateway accepts for a model some provider can serve (the
  `:cloud` forms and aliases included), each with `remote_model` (the canonical model) as
  Ollama lists its cloud models. Sizes are 0 and digests are hashes of the name: nothing is
  stored here.
- `POST /api/show` (`model`, or the older `name`): `details` (family from the canonical name),
  `model_info` with `<family>.context_length`, `parameters` (`num_ctx`), `capabilities`
  (completion, tools, thinking) and `remote_model` / `remote_host`, which tell Ollama's CLI the
  model is remote (no load request).
- `GET /api/ps`: the same names, as always loaded (they are served remotely), with their
  context length.
- `GET /api/version`: the configured version (`ollama_api.version`).
- pull, push, create, copy and delete (and embeddings) answer a 400 saying why: the models are
  not local, so there is nothing to download, upload, build or remove.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from gateway.config import OllamaApiConfig
from gateway.errors import InvalidRequest
from gateway.models import ModelCatalogue
from gateway.surfaces.body import json_object
from gateway.surfaces.ollama.fields import model_name, resolve_model

CAPABILITIES = ("completion", "tools", "thinking")
REMOTE_HOST = "switchyard"  # not ollama.com: Ollama's CLI would then ask ollama.com who we are
_NEVER_EXPIRES = "9999-12-31T23:59:59Z"
_NOT_LOCAL = (
    "{action} is not available: this gateway serves its models remotely, through its "
    "providers, so there is nothing to {verb} (GET /api/tags lists the models it serves)"
)
_NO_EMBEDDINGS = "embeddings are not available: this gateway serves chat models only"

LocalAnswer = Callable[[bytes], bytes]


class ModelDirectory:
    """The answers of the model endpoints, built once at start (the catalogue is fixed)."""

    def __init__(self, catalogue: ModelCatalogue, servable: Iterable[str],
                 config: OllamaApiConfig, started: datetime | None = None) -> None:
        self._catalogue = catalogue
        self._config = config
        self._modified = _timestamp(started or datetime.now(UTC))
        serving = set(servable)
        self._names = [name for name in catalogue.names()
                       if catalogue.resolve(name).canonical in serving]
        self._tags = orjson.dumps({"models": [self._listed(n) for n in self._names]})
        self._ps = orjson.dumps({"models": [self._running(n) for n in self._names]})
        self._version = orjson.dumps({"version": config.version})

    @property
    def names(self) -> list[str]:
        return list(self._names)

    def tags(self, raw: bytes) -> bytes:
        return self._tags

    def ps(self, raw: bytes) -> bytes:
        return self._ps

    def version(self, raw: bytes) -> bytes:
        return self._version

    def show(self, raw: bytes) -> bytes:
        body = json_object(raw)
        name = model_name(body, "model" if body.get("model") is not None else "name")
        canonical = resolve_model(name, self._catalogue).canonical
        family = _family(canonical)
        context = self.context_length(canonical)
        details = {**_details(family), "context_length": context}
        return orjson.dumps({
            "modelfile": f"# {name} is served remotely by Switchyard\nFROM {canonical}\n",
            "parameters": f"num_ctx {context}",
            "template": "",
            "details": details,
            "model_info": {
                "general.architecture": family,
                "general.basename": canonical,
                f"{family}.context_length": context,
            },
            "capabilities": list(CAPABILITIES),
            "remote_model": canonical,
            "remote_host": REMOTE_HOST,
            "modified_at": self._modified,
        })

    def context_length(self, canonical: str) -> int:
        return self._config.context_length.get(canonical, self._config.default_context_length)

    def _listed(self, name: str) -> dict[str, Any]:
        canonical = self._catalogue.resolve(name).canonical
        return {"name": name, "model": name, "remote_model": canonical,
                "modified_at": self._modified, "size": 0, "digest": _digest(name),
                "details": _details(_family(canonical))}

    def _running(self, name: str) -> dict[str, Any]:
        canonical = self._catalogue.resolve(name).canonical
        return {"name": name, "model": name, "size": 0, "digest": _digest(name),
                "details": _details(_family(canonical)), "expires_at": _NEVER_EXPIRES,
                "size_vram": 0, "context_length": self.context_length(canonical)}


def refusals() -> dict[str, LocalAnswer]:
    """POST path -> its refusal, for the endpoints that manage local models or embed."""
    return {
        "/api/pull": refusal(_NOT_LOCAL.format(action="pull", verb="download")),
        "/api/push": refusal(_NOT_LOCAL.format(action="push", verb="upload")),
        "/api/create": refusal(_NOT_LOCAL.format(action="create", verb="build a model from")),
        "/api/copy": refusal(_NOT_LOCAL.format(action="copy", verb="copy")),
        "/api/embed": refusal(_NO_EMBEDDINGS),
        "/api/embeddings": refusal(_NO_EMBEDDINGS),
    }


def delete_refusal() -> LocalAnswer:
    """`DELETE /api/delete`."""
    return refusal(_NOT_LOCAL.format(action="delete", verb="remove"))


def refusal(message: str) -> LocalAnswer:
    """An answer that is always the same 400."""

    def refuse(raw: bytes) -> bytes:
        raise InvalidRequest(message, code="models_not_local")

    return refuse


def _details(family: str) -> dict[str, Any]:
    return {"parent_model": "", "format": "", "family": family, "families": [family],
            "parameter_size": "", "quantization_level": ""}


def _family(canonical: str) -> str:
    """`deepseek-v4-flash` -> `deepseek`."""
    return canonical.split("-", 1)[0].split("/")[-1] or canonical


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _timestamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
