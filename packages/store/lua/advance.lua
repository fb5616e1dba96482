--[[
  advance (v4): record delivery progress, fenced by the destination lease.

  Moves a destination's delivered position from `from - 1` to `to` and removes those results
  from its reorder buffer (or from its result stream, below), but only while the caller still holds the lease it names: a sender
  that lost its lease (paused, partitioned) cannot record progress out of turn. Recording the
  same step twice is harmless (0), so a retry after a lost reply is safe. A dead-letter block
  at or below `to` is cleared.

  KEYS[1]   delivered hash: destination -> last delivered sequence
  KEYS[2]   blocked hash: destination -> sequence of the dead letter holding it
  then per destination: KEYS[2g+1] its lease key, KEYS[2g+2] its reorder buffer hash

  ARGV[1]   number of destinations G
  then per destination: name, lease value ("<owner>|<token>"), from, to

  Skipped sequences, a separate trailing part: the G KEYS after the per-destination ones are
  the destinations' skipped sets, and the G ARGV after them are, per destination, "1" when its step passes its sequences
  without delivering them because of a dead letter (`onDeadLetter: skip`), else "0". A
  recorded skip adds its sequences to the set, so `buffer` dead-letters a result that still
  turns up for one of them as late instead of dropping it silently.

  History, a second trailing part (v3): after the skipped sets, G more KEYS, the destinations'
  history streams, and after the skip flags, G more ARGV, each destination's history length
  (0: keep none). A recorded step appends each value it settles (kind `v` in the reorder
  buffer; drops and dead letters are not kept) to the history stream under the id
  `<sequence>-0`, with the fields m (message id), t (accept time), a (attempts) and
  p (transformed payload), trimmed with `MAXLEN ~ <length>`. Appending is best effort
  (`pcall`): an id at or below the stream's last one (the position rewound by hand) is left
  out rather than failing the step, which was already recorded.

  Results still in the stream (v4), a third trailing part: after the history streams, G more
  KEYS, the destinations' result streams, and after the history lengths, G more ARGV, each a
  list of "<sequence>=<entry id>" pairs separated by spaces (or ""): the settled results that
  the sender took straight from the result stream, before they were moved into the reorder
  buffer. A recorded step deletes those entries from the stream (a value among them goes to the
  history first, read with XRANGE, unless the buffer holds that sequence too).

  Returns   an array of G integers: 1 recorded, 0 already recorded,
            -1 fenced (the lease is not the caller's), -2 out of turn (from is not delivered + 1)

  A hash whose last field this script deletes is gone, and no command touches it after that:
  while a Redis Cluster moves the slot away (MIGRATING), the node refuses a command on a key it
  does not have, and the script would stop half way, its earlier writes kept.
]]
local SEP = '\31'
local groups = tonumber(ARGV[1])
local out = {}

-- Index of the first skipped set in KEYS and of the first skip flag in ARGV; the history
-- streams and lengths follow them, G each.
local skippedKeys = 3 + 2 * groups
local skipFlags = 2 + 4 * groups
local historyKeys = skippedKeys + groups
local historyLengths = skipFlags + groups
local resultKeys = historyKeys + groups
local resultEntries = historyLengths + groups

-- Fields left in the hashes this script deletes from, counted on first use: none left, the hash
-- is gone and not touched again (see the header).
local fieldsLeft = {}
local function left(key)
  if fieldsLeft[key] == nil then fieldsLeft[key] = redis.call('HLEN', key) end
  return fieldsLeft[key]
end
local function hashGet(key, field)
  if left(key) == 0 then return false end
  return redis.call('HGET', key, field)
end
local function hashDelete(key, field)
  if left(key) > 0 then fieldsLeft[key] = fieldsLeft[key] - redis.call('HDEL', key, field) end
end

-- Appends a settled value read from its result stream (fields k, s, m, t, a, p) to the history.
local function rememberEntry(history, length, seq, fields)
  local f = {}
  for j = 1, #fields, 2 do f[fields[j]] = fields[j + 1] end
  if f.k ~= 'v' or not f.p then return end
  redis.pcall('XADD', history, 'MAXLEN', '~', length, seq .. '-0', 'm', f.m, 't', f.t, 'a', f.a, 'p', f.p)
end

-- Appends a settled value (an encoded reorder-buffer entry) to the history stream.
local function remember(history, length, seq, encoded)
  if string.sub(encoded, 1, 2) ~= 'v' .. SEP then return end
  local fields = {}
  local start = 3
  for _ = 1, 3 do
    local stop = string.find(encoded, SEP, start, true)
    if not stop then return end
    fields[#fields + 1] = string.sub(encoded, start, stop - 1)
    start = stop + 1
  end
  redis.pcall('XADD', history, 'MAXLEN', '~', length, seq .. '-0', 'm', fields[1], 't', fields[2],
    'a', fields[3], 'p', string.sub(encoded, start))
end

for g = 1, groups do
  local base = 2 + (g - 1) * 4
  local dest = ARGV[base]
  local leaseValue = ARGV[base + 1]
  local from = tonumber(ARGV[base + 2])
  local to = tonumber(ARGV[base + 3])
  if redis.call('GET', KEYS[2 * g + 1]) ~= leaseValue then
    out[g] = -1
  else
    local delivered = tonumber(redis.call('HGET', KEYS[1], dest) or '0')
    if to <= delivered then
      out[g] = 0
    elseif from ~= delivered + 1 then
      out[g] = -2
    else
      redis.call('HSET', KEYS[1], dest, to)
      local buffer = KEYS[2 * g + 2]
      local historyLength = tonumber(ARGV[historyLengths + g - 1])
      local history = KEYS[historyKeys + g - 1]
      local stream = KEYS[resultKeys + g - 1]
      local inStream = {}
      for seq, entry in string.gmatch(ARGV[resultEntries + g - 1], '(%d+)=(%S+)') do
        inStream[tonumber(seq)] = entry
      end
      -- Deleted together after the loop (one XDEL per 500; see `complete` for why).
      local settled = {}
      for seq = from, to do
        local encoded = false
        if historyLength > 0 then
          encoded = hashGet(buffer, seq)
          if encoded then remember(history, historyLength, seq, encoded) end
        end
        local entry = inStream[seq]
        if entry then
          if historyLength > 0 and not encoded then
            local found = redis.call('XRANGE', stream, entry, entry)
            if found[1] then rememberEntry(history, historyLength, seq, found[1][2]) end
          end
          settled[#settled + 1] = entry
        end
        hashDelete(buffer, seq)
      end
      for first = 1, #settled, 500 do
        redis.call('XDEL', stream, unpack(settled, first, math.min(first + 499, #settled)))
      end
      local blockedAt = tonumber(hashGet(KEYS[2], dest) or '0')
      if blockedAt > 0 and blockedAt <= to then
        hashDelete(KEYS[2], dest)
      end
      out[g] = 1
    end
  end
end

-- Skipped sequences (see the header): only for steps recorded just now.
for g = 1, groups do
  if out[g] == 1 and ARGV[skipFlags + g - 1] == '1' then
    local base = 2 + (g - 1) * 4
    local skipped = KEYS[skippedKeys + g - 1]
    for seq = tonumber(ARGV[base + 2]), tonumber(ARGV[base + 3]) do
      redis.call('SADD', skipped, seq)
    end
  end
end
return out
