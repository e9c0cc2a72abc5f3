"""CPU per parsed Chat Completions request: a one-message body and a coding agent's 200.

`python bench/parse_cost.py` prints microseconds per `parse_chat_request` (best of 5 repeats);
`PYTHONPATH=<checkout> python bench/parse_cost.py` measures another checkout's gateway/, so
before and after run one script (interleave them: the box is shared).
"""

from __future__ import annotations

import timeit

import orjson

from gateway.config import load_config
from gateway.models import ModelCatalogue
from gateway.surfaces.openai_chat.parse import parse_chat_request


def main() -> None:
    catalogue = ModelCatalogue(load_config(None, env={}))
    small = orjson.dumps({"model": "deepseek-v4-flash", "stream": True,
                          "messages": [{"role": "user", "content": "Hi"}]})
    turns = [{"role": "user" if i % 2 == 0 else "assistant",
              "content": [{"type": "text", "text": "x" * 50}]} for i in range(200)]
    agent = orjson.dumps({"model": "deepseek-v4-flash", "stream": True, "messages": turns})
    for name, raw, number in (("1 message", small, 20_000), ("200 messages", agent, 500)):
        best = min(timeit.repeat(lambda raw=raw: parse_chat_request(raw, catalogue),
                                 number=number, repeat=5))
        print(f"{name}: {best / number * 1e6:.2f} us")


if __name__ == "__main__":
    main()
