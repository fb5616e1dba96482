--[[
  ingest (v2): accept a batch of messages.

  For every message and every one of its destinations: take the destination's next sequence
  (read once per call, written back once at its end) and append one entry to the input
  stream, in one atomic step, so a sequence is
  never given out without the entry that makes the message durable, and never twice.
  A message whose client id was seen before gets its stored sequences back and writes nothing.
  A message for a destination that already has `window` messages accepted but not delivered is
  refused (nothing written for it); the other messages of the batch go on.

  KEYS[1]   sequences hash: destination -> last assigned sequence
  KEYS[2]   input stream
  KEYS[3]   delivered hash: destination -> last delivered sequence
  KEYS[4..] one idempotency key per message that carries a client id

  ARGV[1]   accept time, ms since the epoch (stored on each entry as `t`)
  ARGV[2]   idempotency TTL in seconds
  ARGV[3]   backlog limit: refuse the batch while the input stream holds this many entries
  ARGV[4]   destination window: most sequences assigned but not yet delivered per destination
  ARGV[5]   number of messages N
  then per message:
            index into KEYS of its idempotency key (0: the message has no client id)
            message id
            number of destinations D, then D destination names
            payload (JSON text)

  Returns   an array of N strings, "+" (new) or "=" (seen before) followed by
            "<destination>\n<sequence>" pairs joined by "\n", or "!" followed by the name of
            a destination whose window is full (nothing written for that message);
            or the single string "BACKLOG" when the backlog limit is reached (nothing written).
]]
local now = ARGV[1]
local ttl = ARGV[2]
local backlogLimit = tonumber(ARGV[3])
local window = tonumber(ARGV[4])
local count = tonumber(ARGV[5])

if redis.call('XLEN', KEYS[2]) >= backlogLimit then
  return 'BACKLOG'
end

-- Each destination's assigned and delivered positions are read once per call and the new
-- assigned positions written once at the end: a batch holds many messages per destination.
local assignedOf, deliveredOf, changed, isChanged = {}, {}, {}, {}
local function assigned(dest)
  local value = assignedOf[dest]
  if value == nil then
    value = tonumber(redis.call('HGET', KEYS[1], dest) or '0')
    assignedOf[dest] = value
  end
  return value
end
local function delivered(dest)
  local value = deliveredOf[dest]
  if value == nil then
    value = tonumber(redis.call('HGET', KEYS[3], dest) or '0')
    deliveredOf[dest] = value
  end
  return value
end

local out = {}
local i = 6
for m = 1, count do
  local keyIndex = tonumber(ARGV[i])
  local id = ARGV[i + 1]
  local destCount = tonumber(ARGV[i + 2])
  local payload = ARGV[i + 3 + destCount]
  local seen = false
  if keyIndex > 0 then
    seen = redis.call('GET', KEYS[keyIndex])
  end
  local full = false
  if not seen then
    for j = 1, destCount do
      local dest = ARGV[i + 2 + j]
      if assigned(dest) - delivered(dest) >= window then
        full = dest
        break
      end
    end
  end
  if seen then
    out[m] = '=' .. seen
  elseif full then
    out[m] = '!' .. full
  else
    local parts = {}
    for j = 1, destCount do
      local dest = ARGV[i + 2 + j]
      local seq = assigned(dest) + 1
      if not isChanged[dest] then
        isChanged[dest] = true
        changed[#changed + 1] = dest
      end
      assignedOf[dest] = seq
      redis.call('XADD', KEYS[2], '*', 'm', id, 'd', dest, 's', seq, 't', now, 'p', payload)
      parts[#parts + 1] = dest
      parts[#parts + 1] = seq
    end
    local record = table.concat(parts, '\n')
    if keyIndex > 0 then
      redis.call('SET', KEYS[keyIndex], record, 'EX', ttl)
    end
    out[m] = '+' .. record
  end
  i = i + 4 + destCount
end

-- In chunks, as unpack has a limit on how many values it passes.
for first = 1, #changed, 500 do
  local fields = {}
  for j = first, math.min(first + 499, #changed) do
    fields[#fields + 1] = changed[j]
    fields[#fields + 1] = assignedOf[changed[j]]
  end
  redis.call('HSET', KEYS[1], unpack(fields))
end
return out
