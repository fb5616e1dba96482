--[[
  replay-step (v3): the active sender's progress through a replay request, fenced by its lease.

  `start` fixes the end of the replay at the caller's delivered position (unless an earlier
  holder already fixed it) and where to begin (`next`, kept from an interrupted replay);
  `next` records the next sequence to deliver again after one was answered; `done` deletes
  the request. Every mode acts only while the caller holds the destination's lease and the
  request is still the one it took up (an operator may have deleted it).

  KEYS[1]   the destination's lease key
  KEYS[2]   the destination's replay request hash

  ARGV[1]   lease value ("<owner>|<token>")
  ARGV[2]   request id
  ARGV[3]   mode: 'start', 'next' or 'done'
  ARGV[4]   start: the caller's delivered position; next: the next sequence to deliver again

  Returns   {'OK', from, to, next} for start; {'OK'} otherwise;
            {'FENCED'} when the lease is not the caller's; {'GONE'} when the request is not there
]]
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return { 'FENCED' }
end
if redis.call('HGET', KEYS[2], 'id') ~= ARGV[2] then
  return { 'GONE' }
end

local mode = ARGV[3]
if mode == 'start' then
  if redis.call('HEXISTS', KEYS[2], 'to') == 0 then
    local from = redis.call('HGET', KEYS[2], 'from')
    redis.call('HSET', KEYS[2], 'to', ARGV[4], 'next', from)
  end
  local state = redis.call('HMGET', KEYS[2], 'from', 'to', 'next')
  return { 'OK', tonumber(state[1]), tonumber(state[2]), tonumber(state[3]) }
elseif mode == 'next' then
  redis.call('HSET', KEYS[2], 'next', ARGV[4])
  return { 'OK' }
elseif mode == 'done' then
  redis.call('DEL', KEYS[2])
  return { 'OK' }
end
return redis.error_reply('replay-step: unknown mode ' .. tostring(mode))
