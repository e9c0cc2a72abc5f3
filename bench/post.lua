-- wrk script for bench/run.py: POST a chat completion as an OpenAI client would.
-- Usage: wrk ... -s bench/post.lua URL -- [stream]
-- The body is built in init() because wrk formats its static request right after init runs.
local plain = '{"model":"deepseek-v4-flash","messages":[{"role":"user","content":"Say hi"}]}'
local streaming = '{"model":"deepseek-v4-flash","messages":[{"role":"user","content":"Say hi"}],'
  .. '"stream":true}'

function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Authorization"] = "Bearer sk-bench"
  if args[1] == "stream" then
    wrk.body = streaming
  else
    wrk.body = plain
  end
end
