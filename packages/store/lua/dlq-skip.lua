--[[
  dlq-skip (v2): an operator's `dlq skip <destination> <sequence>`: give a dead letter up.

  Unless the destination has passed the sequence already, a "deliver nothing" result (kind
  "n") takes its place in the reorder buffer, so the sender moves past it as past a message
  the transform dropped, and a dead result not yet moved into the buffer leaves the result
  stream. The sequence is recorded as skipped (a result that still turns up for it is
  dead-lettered as late, never delivered). The dead letter leaves the stream and the index,
  and a block marker at that sequence is cleared: the blocked sender reloads and goes on.
  For a sequence already passed (a dead letter skipped by `onDeadLetter: skip`, or a late
  one), this only removes the dead letter from the list.

  KEYS[1]   delivered hash: destination -> last delivered sequence
  KEYS[2]   blocked hash: destination -> sequence of the dead letter holding it
  KEYS[3]   dead-letter stream
  KEYS[4]   the destination's dead-letter index hash: sequence -> dead-letter entry id
  KEYS[5]   the destination's reorder buffer hash
  KEYS[6]   the destination's result stream
  KEYS[7]   the destination's skipped set

  ARGV[1]   destination
  ARGV[2]   sequence

  Returns   { "OK", "skipped" }     its place now holds "deliver nothing"
            { "OK", "removed" }     the sequence was passed already; the dead letter is gone
            { "NO_DEAD_LETTER" }    no dead letter of that destination at that sequence
]]
local SEP = '\31'
local dest = ARGV[1]
local seq = ARGV[2]

local dlqId = redis.call('HGET', KEYS[4], seq)
if not dlqId then
  return { 'NO_DEAD_LETTER' }
end
local found = redis.call('XRANGE', KEYS[3], dlqId, dlqId)
local f = {}
if #found > 0 then
  local raw = found[1][2]
  for j = 1, #raw, 2 do
    f[raw[j]] = raw[j + 1]
  end
end

local outcome = 'removed'
local delivered = tonumber(redis.call('HGET', KEYS[1], dest) or '0')
if tonumber(seq) > delivered then
  outcome = 'skipped'
  redis.call('HSET', KEYS[5], seq, table.concat({ 'n', f['m'] or '', f['t'] or '0', f['a'] or '1', '' }, SEP))
  for _, entry in ipairs(redis.call('XRANGE', KEYS[6], '-', '+')) do
    local fields = entry[2]
    for j = 1, #fields, 2 do
      if fields[j] == 's' and fields[j + 1] == seq then
        redis.call('XDEL', KEYS[6], entry[1])
      end
    end
  end
  redis.call('SADD', KEYS[7], seq)
end

redis.call('XDEL', KEYS[3], dlqId)
redis.call('HDEL', KEYS[4], seq)
if tonumber(redis.call('HGET', KEYS[2], dest) or '0') == tonumber(seq) then
  redis.call('HDEL', KEYS[2], dest)
end
return { 'OK', outcome }
