-- wrk script: pages of a long sync log, as clients catching up read them.
-- POST /_sync/pull {"scope","cursor","limit":100}, the cursor walking the
-- scope's whole log a page at a time (each connection from its own place),
-- so every page read is a full one of 100 changes.
-- usage: wrk -t1 -c32 -d5s -s testkit/scripts/wrk-pull.lua URL -- SCOPE CHANGES
local scope = "big"
local pages = 100
local page = 0
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  scope = args[1] or scope
  pages = math.floor((tonumber(args[2]) or 10000) / 100)
  page = math.random(0, pages - 1)
end

function request()
  page = (page + 1) % pages
  local body = string.format('{"scope":"%s","cursor":%d,"limit":100}', scope, page * 100)
  return wrk.format("POST", "/_sync/pull", headers, body)
end
