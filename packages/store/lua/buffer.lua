--[[
  buffer (v2): move results from destinations' result streams into their reorder buffers.

  Run by the sender that holds the destinations' leases, and fenced by them: a destination
  whose lease the caller no longer holds is left alone (its results stay in the stream for the
  new holder, who loaded the buffer after taking the lease). A result at or below the delivered
  position, or one already buffered, is a duplicate (a recovered worker finishing late) and is
  dropped. Every moved entry is deleted from its result stream in the same step, so a result
  is either in the stream or in the buffer, never lost between them. An entry that is no
  longer in the stream was withdrawn after it was read (an operator's `dlq retry` or
  `dlq skip` of that sequence, or this very call sent twice) and is dropped too.

  A value that turns up for a sequence already passed over without delivery (skipped: its
  dead letter under `onDeadLetter: skip`, or an operator's `dlq skip`) is never delivered: it
  goes to the dead-letter stream with reason "LATE: ..." and stage "late", indexed like any
  dead letter (replacing an older one at that sequence), so an operator sees it.

  KEYS[1]   delivered hash: destination -> last delivered sequence
  KEYS[2]   dead-letter stream
  then per destination: KEYS[5g-2] its lease key, KEYS[5g-1] its reorder buffer hash
                        (sequence -> encoded result), KEYS[5g] its result stream,
                        KEYS[5g+1] its skipped set, KEYS[5g+2] its dead-letter index hash

  ARGV[1]   number of destinations G
  then per destination: name, lease value, number of entries E,
                        then E times (entry id, sequence, encoded result)

  Returns   an array of G integers: how many of that destination's entries were not buffered
            (duplicates, withdrawn or late), or -1 when the caller does not hold its lease
            (nothing done for it)
]]
local SEP = '\31'

-- A value that arrived for a skipped sequence: dead-letter it as late (never delivered).
local function deadLetterLate(dest, seq, encoded, index)
  local fields = {}
  local start = 1
  for _ = 1, 4 do
    local stop = string.find(encoded, SEP, start, true)
    if not stop then return end
    fields[#fields + 1] = string.sub(encoded, start, stop - 1)
    start = stop + 1
  end
  local time = redis.call('TIME')
  local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  local id = redis.call('XADD', KEYS[2], '*', 'd', dest, 's', seq, 'm', fields[2], 'a', fields[4],
    'e', 'LATE: a result arrived after sequence ' .. seq .. ' had been skipped; it is never delivered',
    't', fields[3], 'at', now, 'p', string.sub(encoded, start), 'stage', 'late')
  local older = redis.call('HGET', index, seq)
  if older then
    redis.call('XDEL', KEYS[2], older)
  end
  redis.call('HSET', index, seq, id)
end

local groups = tonumber(ARGV[1])
local out = {}
local i = 2
for g = 1, groups do
  local dest = ARGV[i]
  local leaseValue = ARGV[i + 1]
  local entries = tonumber(ARGV[i + 2])
  local buffer = KEYS[5 * g - 1]
  local stream = KEYS[5 * g]
  local skipped = KEYS[5 * g + 1]
  local index = KEYS[5 * g + 2]
  i = i + 3
  if redis.call('GET', KEYS[5 * g - 2]) ~= leaseValue then
    out[g] = -1
    i = i + 3 * entries
  else
    local delivered = tonumber(redis.call('HGET', KEYS[1], dest) or '0')
    local duplicates = 0
    for _ = 1, entries do
      local seq = tonumber(ARGV[i + 1])
      local encoded = ARGV[i + 2]
      if redis.call('XDEL', stream, ARGV[i]) == 0 then
        duplicates = duplicates + 1
      elseif seq <= delivered then
        if string.sub(encoded, 1, 1) == 'v' and redis.call('SISMEMBER', skipped, seq) == 1 then
          deadLetterLate(dest, seq, encoded, index)
        end
        duplicates = duplicates + 1
      elseif redis.call('HSETNX', buffer, ARGV[i + 1], encoded) == 0 then
        duplicates = duplicates + 1
      end
      i = i + 3
    end
    out[g] = duplicates
  end
end
return out
