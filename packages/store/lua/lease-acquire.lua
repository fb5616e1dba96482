--[[
  lease-acquire (v2): take free destination leases, or extend the caller's own.

  A new holder gets a fencing token one above the last one ever given for that destination
  (HINCRBY, never reused), and the lease value "<owner>|<token>" that every fenced script
  compares against.

  KEYS[1]   fences hash: destination -> last fencing token given out
  KEYS[2..] lease keys, one per destination

  ARGV[1]   owner (the sender's id)
  ARGV[2]   lease time to live in ms
  ARGV[3]   most leases to newly take in this call (the caller's fair share)
  ARGV[4..] destination names, in the order of KEYS[2..]

  Returns   an array, per destination: the lease value when the caller holds the lease now,
            "" when another sender holds it
]]
local owner = ARGV[1]
local ttl = ARGV[2]
local budget = tonumber(ARGV[3])
local out = {}
for i = 2, #KEYS do
  local current = redis.call('GET', KEYS[i])
  out[i - 1] = ''
  if not current then
    if budget > 0 then
      budget = budget - 1
      local token = redis.call('HINCRBY', KEYS[1], ARGV[i + 2], 1)
      local value = owner .. '|' .. token
      redis.call('SET', KEYS[i], value, 'PX', ttl)
      out[i - 1] = value
    end
  elseif string.sub(current, 1, #owner + 1) == owner .. '|' then
    redis.call('PEXPIRE', KEYS[i], ttl)
    out[i - 1] = current
  end
end
return out
