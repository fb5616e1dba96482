--[[
  complete (v2): record the outcome of a batch of transforms.

  For each input entry: acknowledge it and append its outcome to its destination's result
  stream, atomically; then trim the settled entries off the input stream (below). An entry
  that was already acknowledged (a peer took it over and finished first) is a duplicate:
  nothing is written, so a result reaches its destination's stream at most once. A dead letter is also appended
  to the dead-letter stream with its original payload, attempts and last error, and indexed
  (sequence -> entry id) in the destination's dead-letter index; an older dead letter at the
  same sequence is replaced (one dead letter per destination and sequence).

  KEYS[1]   input stream
  KEYS[2]   dead-letter stream
  KEYS[3..] result streams, one per destination in the batch, and the dead-letter index hash
            of each destination with a dead letter in the batch

  ARGV[1]   consumer group of the workers
  ARGV[2]   now, ms since the epoch (dead-lettered at)
  ARGV[3]   number of outcomes N
  then per outcome (10 values):
            input entry id
            index into KEYS of the destination's result stream
            kind: "v" (deliver a value), "n" (deliver nothing), "x" (dead letter)
            message id
            sequence
            accept time (ms)
            attempts made
            body: the transformed payload for "v", the last error for "x", "" for "n"
            for "x": the original payload and destination name as "<destination>\n<payload>"; else ""
            for "x": index into KEYS of the destination's dead-letter index; else 0

  Returns   { written, duplicates }

  The acknowledged entries are not deleted one by one: the stream is trimmed (XTRIM MINID) up
  to the oldest entry the group still needs: its oldest pending entry, or, with none pending,
  the one after the last it was handed. Every entry below that bound was handed to the group
  (XREADGROUP hands entries out in id order, and ids only grow) and is no longer pending, so
  settled. Entries settled above the oldest pending one stay until it settles: the stream holds
  what is unread, in flight, and settled behind something still in flight. Trimming from the
  front costs Redis a fraction of deleting oldest first (XDEL looks for the stream's new first
  entry after each deletion of the current one). The bound is the workers' group's alone: the
  input stream has no other reader.
]]
local group = ARGV[1]
local now = ARGV[2]
local count = tonumber(ARGV[3])
local written = 0
local duplicates = 0
local acked = 0
local i = 4
for _ = 1, count do
  local entryId = ARGV[i]
  local resultKey = KEYS[tonumber(ARGV[i + 1])]
  local kind = ARGV[i + 2]
  local id = ARGV[i + 3]
  local seq = ARGV[i + 4]
  local acceptedAt = ARGV[i + 5]
  local attempts = ARGV[i + 6]
  local body = ARGV[i + 7]
  if redis.call('XACK', KEYS[1], group, entryId) == 1 then
    acked = acked + 1
    if kind == 'x' then
      local extra = ARGV[i + 8]
      local sep = string.find(extra, '\n', 1, true)
      local dlqId = redis.call('XADD', KEYS[2], '*', 'd', string.sub(extra, 1, sep - 1), 's', seq, 'm', id,
        'a', attempts, 'e', body, 't', acceptedAt, 'at', now, 'p', string.sub(extra, sep + 1))
      local index = KEYS[tonumber(ARGV[i + 9])]
      local older = redis.call('HGET', index, seq)
      if older then
        redis.call('XDEL', KEYS[2], older)
      end
      redis.call('HSET', index, seq, dlqId)
    end
    redis.call('XADD', resultKey, '*', 'k', kind, 's', seq, 'm', id, 't', acceptedAt,
      'a', attempts, 'p', body)
    written = written + 1
  else
    duplicates = duplicates + 1
  end
  i = i + 10
end
if acked > 0 then
  local oldest = redis.call('XPENDING', KEYS[1], group, '-', '+', 1)[1]
  local bound = oldest and oldest[1]
  if not bound then
    local last
    for _, info in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
      local fields = {}
      for j = 1, #info, 2 do fields[info[j]] = info[j + 1] end
      if fields['name'] == group then last = fields['last-delivered-id'] end
    end
    local ms, seq = string.match(last or '', '^(%d+)-(%d+)$')
    -- The entry after the last handed out; a sequence too long for a Lua number keeps that one.
    if ms and #seq < 15 then bound = ms .. '-' .. string.format('%d', tonumber(seq) + 1) else bound = last end
  end
  if bound then redis.call('XTRIM', KEYS[1], 'MINID', bound) end
end
return { written, duplicates }
