"""OpenAI Responses: `POST /v1/responses` (streamed and not) and the stored responses behind
`previous_response_id`, `GET`/`DELETE /v1/responses/{id}` and `/input_items`: the API of the
openai SDKs' `responses.*`, the OpenAI Agents SDK and Codex CLI, served by the DeepSeek models.

parse.py, inputs.py and tools.py turn a request into a canonical call; output.py, render.py and
stream.py turn canonical answers and chunks into response objects and events (ids.py mints
their ids, reasoning.py their `encrypted_content`, errors.py their failures); store.py and
routes.py keep and serve stored responses; surface.py is what the core and the app see.
"""
