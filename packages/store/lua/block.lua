--[[
  block (v2): mark a destination blocked by the dead letter at a sequence (onDeadLetter:
  block), unless that dead letter was released meanwhile: an operator's `dlq retry` or
  `dlq skip` may run while the sender still holds the dead result in memory, and a marker set
  after it would hold the destination for good.

  KEYS[1]   blocked hash: destination -> sequence of the dead letter holding it
  KEYS[2]   the destination's reorder buffer hash
  KEYS[3]   the destination's dead-letter index hash

  ARGV[1]   destination
  ARGV[2]   sequence
  ARGV[3]   stage: "transform" (still held when the reorder buffer holds a dead result, kind
            "x", at that sequence) or "delivery" (the destination refused the buffered value;
            still held while the dead-letter index lists that sequence)

  Returns   1 marked; 0 the dead letter is gone (the caller reloads its state)
]]
local seq = ARGV[2]
local held
if ARGV[3] == 'delivery' then
  held = redis.call('HEXISTS', KEYS[3], seq) == 1
else
  local value = redis.call('HGET', KEYS[2], seq)
  held = value and string.sub(value, 1, 1) == 'x'
end
if not held then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], seq)
return 1
