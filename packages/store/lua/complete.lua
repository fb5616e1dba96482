--[[
  complete (v2): record the outcome of a batch of transforms.

  For each input entry: acknowledge it, delete it from the input stream and append its
  outcome to its destination's result stream, atomically. An entry that was already
  acknowledged (a peer took it over and finished first) is a duplicate: nothing is written,
  so a result reaches its destination's stream at most once. A dead letter is also appended
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

  The acknowledged entries are deleted with one XDEL per 500 at the end, not one each: Redis
  looks for the stream's new first entry once per XDEL that removed the current one, stepping
  over the deleted entries before it, so deleting oldest first one at a time cost twice as much.
]]
local group = ARGV[1]
local now = ARGV[2]
local count = tonumber(ARGV[3])
local written = 0
local duplicates = 0
local acked = {}
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
    acked[#acked + 1] = entryId
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
-- In chunks, as unpack has a limit on how many values it passes.
for first = 1, #acked, 500 do
  redis.call('XDEL', KEYS[1], unpack(acked, first, math.min(first + 499, #acked)))
end
return { written, duplicates }
