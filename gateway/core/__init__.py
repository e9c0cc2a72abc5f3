"""The protocol-neutral core: canonical calls, answers and chunks, and the pipeline that serves
them. No module here knows any client API's JSON; surfaces (gateway/surfaces) do."""
