--[[
  status-age (v3, read only): when each destination's oldest unsettled message was accepted.

  The oldest message a destination has accepted and not yet settled is always the sequence
  after its delivered position. It is, in the order a message travels, still in the input
  stream (unread, or with a worker), in the destination's result stream, or in its reorder
  buffer (ahead of its turn, waiting behind a pause, or a dead letter holding it). Each place
  records its accept time (`t`). The buffer is one HGET; the streams are scanned from their
  start, at most `limit` entries each (one scan of the input stream serves every destination):
  the input stream is in accept order, so that message is among the first entries of its
  destination there.

  KEYS[1]   delivered hash: destination -> last delivered sequence
  KEYS[2]   sequences hash: destination -> last assigned sequence
  KEYS[3]   input stream
  then per destination: KEYS[2g+2] its reorder buffer hash, KEYS[2g+3] its result stream

  ARGV[1]   number of destinations G
  ARGV[2]   limit: most entries read from each stream
  then G destination names

  Returns   an array of G integers: the accept time (ms since the epoch) of the sequence after
            the delivered position; 0 when nothing is unsettled; -1 when it was not found
            (lost, or beyond the scan limit) or carries no accept time
]]
local SEP = '\31'
local groups = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local out = {}
local wanted = {}
local missing = 0

local function field(entry, name)
  for i = 1, #entry, 2 do
    if entry[i] == name then return entry[i + 1] end
  end
  return nil
end

local function known(t)
  local ms = tonumber(t or '')
  if ms and ms > 0 then return ms end
  return -1
end

for g = 1, groups do
  local dest = ARGV[2 + g]
  local delivered = tonumber(redis.call('HGET', KEYS[1], dest) or '0')
  local assigned = tonumber(redis.call('HGET', KEYS[2], dest) or '0')
  out[g] = 0
  if assigned > delivered then
    local nextSeq = delivered + 1
    local encoded = redis.call('HGET', KEYS[2 * g + 2], nextSeq)
    if encoded then
      -- <kind>SEP<id>SEP<accept time>SEP...
      local first = string.find(encoded, SEP, 1, true)
      local second = first and string.find(encoded, SEP, first + 1, true)
      local third = second and string.find(encoded, SEP, second + 1, true)
      out[g] = third and known(string.sub(encoded, second + 1, third - 1)) or -1
    else
      out[g] = -1
      for _, entry in ipairs(redis.call('XRANGE', KEYS[2 * g + 3], '-', '+', 'COUNT', limit)) do
        if tonumber(field(entry[2], 's')) == nextSeq then
          out[g] = known(field(entry[2], 't'))
          break
        end
      end
      if out[g] == -1 then
        wanted[dest] = { g = g, next = nextSeq }
        missing = missing + 1
      end
    end
  end
end

if missing > 0 then
  for _, entry in ipairs(redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', limit)) do
    local want = wanted[field(entry[2], 'd')]
    if want and tonumber(field(entry[2], 's')) == want.next then
      out[want.g] = known(field(entry[2], 't'))
      wanted[field(entry[2], 'd')] = nil
      missing = missing - 1
      if missing == 0 then break end
    end
  end
end
return out
