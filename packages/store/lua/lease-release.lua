--[[
  lease-release (v2): give leases back at once (graceful shutdown, rebalancing), so another
  sender can take the destinations without waiting for the time to live to run out.

  KEYS[1..] lease keys
  ARGV[1..] the caller's lease values, in the order of KEYS

  Returns   the number of leases released
]]
local released = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i] then
    redis.call('DEL', KEYS[i])
    released = released + 1
  end
end
return released
