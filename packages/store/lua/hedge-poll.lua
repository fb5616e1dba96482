--[[
  hedge-poll (v3): one look of a transform worker at the hedge requests (hedged dispatch,
  `worker.hedgeAfterMs`), in one step.

  A worker whose transform attempt runs long adds a request "<entry id>|<attempt>|<consumer>"
  (ZADD, scored by the time it asked). This script, run by any worker:

  1. Looks at the oldest requests. One whose input entry is no longer pending in the workers'
     group (completed by either copy, or gone) is removed, whoever made it. One of another worker,
     while the caller still has room, is removed and handed to the caller with its input entry's
     fields: removal makes the hand-out happen once, so an entry gets at most one hedge per
     request. A request of the caller itself is never taken: a hedge runs on another worker.
  2. Reports which of the entries the caller watches (those it runs with a hedge out, and its
     hedge copies) are no longer pending: another copy finished them, so the caller stops its own.

  Nothing here acknowledges or claims an input entry: the owner keeps it in its pending list (so
  a crash of either copy leaves it to the usual takeover), and both copies complete through the
  `complete` script, which records only the first.

  KEYS[1]   hedge requests (sorted set)
  KEYS[2]   input stream

  ARGV[1]   consumer group of the workers
  ARGV[2]   the caller's consumer name
  ARGV[3]   most requests to take (0: only clean up and watch)
  ARGV[4]   most requests to look at
  ARGV[5..] entry ids the caller watches

  Returns   { taken, gone }: taken = one { entry id, attempt, requester, input entry fields as a
            flat array } per request taken, oldest first; gone = the watched entry ids that are
            no longer pending
]]
local group = ARGV[1]
local me = ARGV[2]
local room = tonumber(ARGV[3])
local look = tonumber(ARGV[4])

local function isPending(id)
  return #redis.call('XPENDING', KEYS[2], group, id, id, 1) > 0
end

local taken = {}
if look > 0 then
  for _, request in ipairs(redis.call('ZRANGE', KEYS[1], 0, look - 1)) do
    local first = string.find(request, '|', 1, true)
    local second = first and string.find(request, '|', first + 1, true)
    local id = first and string.sub(request, 1, first - 1)
    if not second or not string.match(id, '^%d+%-%d+$') then
      -- Not a request this script understands: drop it rather than trip over it on every look.
      redis.call('ZREM', KEYS[1], request)
    elseif not isPending(id) then
      redis.call('ZREM', KEYS[1], request)
    elseif #taken < room and string.sub(request, second + 1) ~= me then
      redis.call('ZREM', KEYS[1], request)
      local entry = redis.call('XRANGE', KEYS[2], id, id)[1]
      if entry then
        taken[#taken + 1] = { id, string.sub(request, first + 1, second - 1), string.sub(request, second + 1), entry[2] }
      end
    end
  end
end

local gone = {}
for i = 5, #ARGV do
  if not isPending(ARGV[i]) then
    gone[#gone + 1] = ARGV[i]
  end
end
return { taken, gone }
