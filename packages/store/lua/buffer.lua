--[[
  buffer (v1): move results from destinations' result streams into their reorder buffers.

  Run by the sender that holds the destinations' leases, and fenced by them: a destination
  whose lease the caller no longer holds is left alone (its results stay in the stream for the
  new holder, who loaded the buffer after taking the lease). A result at or below the delivered
  position, or one already buffered, is a duplicate (a recovered worker finishing late) and is
  dropped. Every moved entry is deleted from its result stream in the same step, so a result
  is either in the stream or in the buffer, never lost between them.

  KEYS[1]   delivered hash: destination -> last delivered sequence
  then per destination: KEYS[3g-1] its lease key, KEYS[3g] its reorder buffer hash
                        (sequence -> encoded result), KEYS[3g+1] its result stream

  ARGV[1]   number of destinations G
  then per destination: name, lease value, number of entries E,
                        then E times (entry id, sequence, encoded result)

  Returns   an array of G integers: how many of that destination's entries were duplicates,
            or -1 when the caller does not hold its lease (nothing done for it)
]]
local groups = tonumber(ARGV[1])
local out = {}
local i = 2
for g = 1, groups do
  local dest = ARGV[i]
  local leaseValue = ARGV[i + 1]
  local entries = tonumber(ARGV[i + 2])
  local buffer = KEYS[3 * g]
  local stream = KEYS[3 * g + 1]
  i = i + 3
  if redis.call('GET', KEYS[3 * g - 1]) ~= leaseValue then
    out[g] = -1
    i = i + 3 * entries
  else
    local delivered = tonumber(redis.call('HGET', KEYS[1], dest) or '0')
    local duplicates = 0
    for _ = 1, entries do
      local seq = tonumber(ARGV[i + 1])
      if seq <= delivered or redis.call('HSETNX', buffer, ARGV[i + 1], ARGV[i + 2]) == 0 then
        duplicates = duplicates + 1
      end
      redis.call('XDEL', stream, ARGV[i])
      i = i + 3
    end
    out[g] = duplicates
  end
end
return out
