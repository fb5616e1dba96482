--[[
  dlq-retry (v2): an operator's `dlq retry <destination> <sequence>`: give a dead letter
  another go in its own place, before everything after it.

  Refused while the destination's delivered position is at or past the sequence: it was
  passed over (skipped) and cannot be delivered in its place any more. Otherwise:
  - transform stage: the original message goes back on the input stream with its message id,
    destination, sequence, accept time and original payload (a worker transforms it again,
    attempts starting at 1); the dead result leaves the reorder buffer, and a dead result not
    yet moved there leaves the result stream (`buffer` drops an entry that is gone);
  - delivery stage (the destination refused it): the original payload is no longer kept, and
    the transform already succeeded, so the stored transformed payload goes back into the
    reorder buffer as a value: the sender delivers it again.
  Then the dead letter leaves the stream and the index, and a block marker at that sequence is
  cleared: the blocked sender sees that (within its poll interval), reloads and goes on.

  KEYS[1]   delivered hash: destination -> last delivered sequence
  KEYS[2]   blocked hash: destination -> sequence of the dead letter holding it
  KEYS[3]   dead-letter stream
  KEYS[4]   input stream
  KEYS[5]   the destination's dead-letter index hash: sequence -> dead-letter entry id
  KEYS[6]   the destination's reorder buffer hash
  KEYS[7]   the destination's result stream
  KEYS[8]   the destination's skipped set

  ARGV[1]   destination
  ARGV[2]   sequence

  Returns   { "OK", stage ("transform" or "delivery"), new input entry id or "" }
            { "NO_DEAD_LETTER" }                no dead letter of that destination at that sequence
            { "ALREADY_PASSED", delivered }     the delivered position is at or past it
            { "LOST" }                          the dead letter is a lost sequence (stage gap):
                                                nothing to retry
]]
local SEP = '\31'
local dest = ARGV[1]
local seq = ARGV[2]

local dlqId = redis.call('HGET', KEYS[5], seq)
if not dlqId then
  return { 'NO_DEAD_LETTER' }
end
local found = redis.call('XRANGE', KEYS[3], dlqId, dlqId)
if #found == 0 then
  -- The entry was deleted by hand: the index entry is stale.
  redis.call('HDEL', KEYS[5], seq)
  return { 'NO_DEAD_LETTER' }
end
local delivered = tonumber(redis.call('HGET', KEYS[1], dest) or '0')
if tonumber(seq) <= delivered then
  return { 'ALREADY_PASSED', delivered }
end

local f = {}
local raw = found[1][2]
for j = 1, #raw, 2 do
  f[raw[j]] = raw[j + 1]
end
local stage = f['stage'] or 'transform'
if stage == 'gap' then
  -- A sequence found nowhere (GAP_LOST): there is no message to transform or deliver again.
  return { 'LOST' }
end
local written = ''
if stage == 'delivery' then
  redis.call('HSET', KEYS[6], seq, table.concat({ 'v', f['m'] or '', f['t'] or '0', f['a'] or '1', f['p'] or '' }, SEP))
else
  stage = 'transform'
  redis.call('HDEL', KEYS[6], seq)
  for _, entry in ipairs(redis.call('XRANGE', KEYS[7], '-', '+')) do
    local fields = entry[2]
    for j = 1, #fields, 2 do
      if fields[j] == 's' and fields[j + 1] == seq then
        redis.call('XDEL', KEYS[7], entry[1])
      end
    end
  end
  written = redis.call('XADD', KEYS[4], '*', 'm', f['m'], 'd', dest, 's', seq, 't', f['t'] or '0', 'p', f['p'] or 'null')
end

redis.call('XDEL', KEYS[3], dlqId)
redis.call('HDEL', KEYS[5], seq)
redis.call('SREM', KEYS[8], seq)
if tonumber(redis.call('HGET', KEYS[2], dest) or '0') == tonumber(seq) then
  redis.call('HDEL', KEYS[2], dest)
end
return { 'OK', stage, written }
