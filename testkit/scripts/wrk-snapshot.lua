-- wrk script: whole-scope snapshots, as new or far-behind clients load them.
-- POST /_sync/snapshot {"scope"} on one scope.
-- usage: wrk -t1 -c32 -d5s -s testkit/scripts/wrk-snapshot.lua URL -- SCOPE
local headers = { ["Content-Type"] = "application/json" }
local body = '{"scope":"big"}'

function init(args)
  body = string.format('{"scope":"%s"}', args[1] or "big")
end

function request()
  return wrk.format("POST", "/_sync/snapshot", headers, body)
end
