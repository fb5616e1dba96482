--[[
  forget-consumers: remove the worker group's consumers that hold nothing and have been idle
  for a while (the names of stopped or crashed workers), in one atomic step: XGROUP DELCONSUMER
  drops the entries a consumer holds from the group's pending list, so the check that it holds
  none and the removal must not have a read between them.

  KEYS[1]   input stream
  ARGV[1]   consumer group
  ARGV[2]   the calling worker's own consumer name (never removed)
  ARGV[3]   idle time in ms from which a consumer that holds nothing is removed

  Returns   the names removed
]]
local removed = {}
for _, flat in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local fields = {}
  for i = 1, #flat, 2 do
    fields[flat[i]] = flat[i + 1]
  end
  if fields['name'] ~= ARGV[2] and tonumber(fields['pending']) == 0 and tonumber(fields['idle']) >= tonumber(ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], fields['name'])
    removed[#removed + 1] = fields['name']
  end
end
return removed
