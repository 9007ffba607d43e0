-- wrk script: one fresh mutation per request, as a new user's load would be.
-- POST /_sync/push with {"mutations":[{"id","scope","name":"put","args":{"key","value"}}]};
-- scopes go round 100 names. Ids are unique within a run: a prefix given
-- after `--` (one per wrk process, so several processes never collide) and a
-- per-thread counter.
-- usage: wrk -t1 -c32 -d6s -s testkit/scripts/wrk-fresh-push.lua URL -- PREFIX
local counter = 0
local prefix = "run"
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  prefix = (args[1] or "run") .. "-" .. tostring(math.random(0, 0x7fffffff))
end

function request()
  counter = counter + 1
  local body = string.format(
    '{"mutations":[{"id":"%s-%d","scope":"s%d","name":"put","args":{"key":"k%d","value":%d}}]}',
    prefix, counter, counter % 100, counter % 1000, counter)
  return wrk.format("POST", "/_sync/push", headers, body)
end
