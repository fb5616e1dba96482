--[[
  sender-heartbeat (v2): announce a live sender and count the live ones, on Redis's clock
  (so senders on machines with skewed clocks agree on who is alive).

  KEYS[1]   senders sorted set: sender id -> last heartbeat (ms, Redis time)
  ARGV[1]   sender id
  ARGV[2]   how long a heartbeat counts, in ms
  ARGV[3]   "1" to announce, "0" to withdraw (shutdown)

  Returns   the number of live senders, the caller included when announcing

  Stale heartbeats are dropped last, by one command: it may empty (delete) the set, and while a
  Redis Cluster moves the slot away (MIGRATING), the node refuses a command on a key it does not
  have, which would stop the script half way.
]]
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local stale = now - tonumber(ARGV[2])
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[1], now, ARGV[1])
else
  -- Withdrawing: the caller's heartbeat turns stale (XX: only where it is there) and goes below.
  redis.call('ZADD', KEYS[1], 'XX', stale, ARGV[1])
end
local live = redis.call('ZCOUNT', KEYS[1], '(' .. stale, '+inf')
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', stale)
return live
