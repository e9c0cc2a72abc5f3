-- wrk script for bench/run.py: POST a chat completion as an OpenAI client would.
-- Usage: wrk ... -s bench/post.lua URL -- [stream|plain] [PACE_MS]
-- PACE_MS: each connection waits that long before each request (a fixed offered rate of
-- connections x 1000 / PACE_MS requests/s instead of as fast as the server answers).
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
  local pace = tonumber(args[2])
  if pace then
    delay = function() return pace end
  end
end
