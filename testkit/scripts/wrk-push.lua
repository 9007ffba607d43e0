-- wrk script: one fresh mutation per request, as a new user's load would be.
-- POST /_sync/push with {"mutations":[{"id","scope","name":"put","args":{"key","value"}}]};
-- ids are unique (a per-run prefix and a counter), scopes go round 100 names.
-- usage: wrk -t1 -c32 -d5s -s testkit/scripts/wrk-push.lua http://127.0.0.1:8080
local counter = 0
local prefix = string.format("%x-%x", os.time(), math.random(0, 0x7fffffff))
local headers = { ["Content-Type"] = "application/json" }

request = function()
  counter = counter + 1
  local body = string.format(
    '{"mutations":[{"id":"%s-%d","scope":"s%d","name":"put","args":{"key":"k%d","value":%d}}]}',
    prefix, counter, counter % 100, counter % 1000, counter)
  return wrk.format("POST", "/_sync/push", headers, body)
end
