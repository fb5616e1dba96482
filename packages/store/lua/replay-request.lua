--[[
  replay-request (v3): schedule `reseq replay <destination> --from <sequence>`.

  Records a replay request for the destination's active sender to take up (it delivers the
  retained history from `from` up to its delivered position again, in order, then carries on),
  after checking, in the same atomic step, that the request can be met: the destination is not
  paused, no other replay is pending, `from` is not above the delivered position, and the
  history still holds `from` (its oldest entry is at or below it).

  KEYS[1]   delivered hash: destination -> last delivered sequence
  KEYS[2]   paused hash: destination -> when it was paused
  KEYS[3]   the destination's replay request hash
  KEYS[4]   the destination's history stream (entry ids `<sequence>-0`)

  ARGV[1]   destination
  ARGV[2]   from: first sequence to deliver again
  ARGV[3]   request id
  ARGV[4]   request time, ms since the epoch

  Returns   {'OK', delivered, oldest retained, newest retained}
            {'PAUSED', paused since}
            {'PENDING', from, delivered when requested, next (0: not started)}
            {'NOT_DELIVERED', delivered}
            {'NOT_RETAINED', oldest retained (0: none), newest retained (0: none), delivered}
]]
local dest = ARGV[1]
local from = tonumber(ARGV[2])

local pausedSince = redis.call('HGET', KEYS[2], dest)
if pausedSince then
  return { 'PAUSED', tonumber(pausedSince) }
end

if redis.call('EXISTS', KEYS[3]) == 1 then
  local pending = redis.call('HMGET', KEYS[3], 'from', 'requested', 'next')
  return { 'PENDING', tonumber(pending[1] or '0'), tonumber(pending[2] or '0'), tonumber(pending[3] or '0') }
end

local delivered = tonumber(redis.call('HGET', KEYS[1], dest) or '0')
if from > delivered then
  return { 'NOT_DELIVERED', delivered }
end

local function sequenceOf(entries)
  if #entries == 0 then return 0 end
  return tonumber(string.match(entries[1][1], '^(%d+)'))
end
local oldest = sequenceOf(redis.call('XRANGE', KEYS[4], '-', '+', 'COUNT', 1))
local newest = sequenceOf(redis.call('XREVRANGE', KEYS[4], '+', '-', 'COUNT', 1))
if oldest == 0 or from < oldest then
  return { 'NOT_RETAINED', oldest, newest, delivered }
end

redis.call('HSET', KEYS[3], 'id', ARGV[3], 'from', from, 'requested', delivered, 'at', ARGV[4])
return { 'OK', delivered, oldest, newest }
