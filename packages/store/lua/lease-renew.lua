--[[
  lease-renew (v2): extend leases the caller still holds.

  KEYS[1..] lease keys
  ARGV[1]   lease time to live in ms
  ARGV[2..] the caller's lease values, in the order of KEYS

  Returns   an array of 1 (renewed) or 0 (lost: expired or taken over)
]]
local out = {}
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[i + 1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
