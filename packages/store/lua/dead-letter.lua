--[[
  dead-letter (v2): record a dead letter that the sender found, not a worker: a result the
  destination refused for good (a 4xx). Appends it to the dead-letter stream and indexes it
  in the destination's dead-letter index in one step, replacing an older dead letter at the
  same sequence (one per destination and sequence: a destination that refuses again after a
  `dlq retry`, or again after a sender crash, leaves one entry, the newest).

  KEYS[1]   dead-letter stream
  KEYS[2]   the destination's dead-letter index hash: sequence -> dead-letter entry id

  ARGV[1]   destination
  ARGV[2]   sequence
  ARGV[3]   message id
  ARGV[4]   attempts the transform took
  ARGV[5]   reason: a dead-letter code, ": " and the detail
  ARGV[6]   accept time (ms)
  ARGV[7]   now, ms since the epoch (dead-lettered at)
  ARGV[8]   payload: the transformed payload the destination refused, as JSON text
  ARGV[9]   stage, e.g. "delivery"

  Returns   the new dead-letter entry's id
]]
local seq = ARGV[2]
local id = redis.call('XADD', KEYS[1], '*', 'd', ARGV[1], 's', seq, 'm', ARGV[3], 'a', ARGV[4],
  'e', ARGV[5], 't', ARGV[6], 'at', ARGV[7], 'p', ARGV[8], 'stage', ARGV[9])
local older = redis.call('HGET', KEYS[2], seq)
if older then
  redis.call('XDEL', KEYS[1], older)
end
redis.call('HSET', KEYS[2], seq, id)
return id
