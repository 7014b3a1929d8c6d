-- Consistent read of one object, adopting a write made outside the commit path first.
-- KEYS: 1 fields, 2 meta, 3 log, 4 feed.
-- ARGV: 1 since (-1: snapshot only), 2 obj, 3 feed length, 4 check ("1": compare the
--       fields with the signature the commits keep; index objects, which hold thousands of
--       fields, skip it and rely on keyspace reconcile alone)
-- Returns {rev, adopted (0|1), flat fields} when a snapshot is needed, or
-- {rev, adopted, false, log entries...} (newest first) when the op log covers every revision
-- after since.
--
-- The signature check is what makes a write nobody was watching visible: a client resuming
-- at rev R would otherwise be told "nothing since R" while a fresh subscriber's snapshot,
-- also at R, shows the new value (docs/dsm-protocol.md, "Writes outside the commit path").
local kf, km, kl, kfeed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local since = tonumber(ARGV[1])
local meta = redis.call('HMGET', km, 'rev', 'sig1', 'sig2')
local rev = tonumber(meta[1] or '0')
local function int(n) return string.format('%d', n) end

local all = nil
if ARGV[4] == '1' then
  all = redis.call('HGETALL', kf)
  local sig1, sig2 = 0, 0
  local fields = {}
  for i = 1, #all, 2 do
    local h = redis.sha1hex(all[i] .. '\0' .. all[i + 1])
    sig1 = bit.bxor(sig1, tonumber(string.sub(h, 1, 6), 16))
    sig2 = bit.bxor(sig2, tonumber(string.sub(h, 7, 12), 16))
    fields[all[i]] = all[i + 1]
  end
  if sig1 ~= tonumber(meta[2] or '0') or sig2 ~= tonumber(meta[3] or '0') then
    -- Adopt: a new revision whose op log starts empty, announced as a resync with the
    -- whole field map.
    rev = rev + 1
    redis.call('HSET', km, 'rev', int(rev), 'sig1', int(sig1), 'sig2', int(sig2))
    redis.call('DEL', kl)
    local fjson = '{}'
    if #all > 0 then fjson = cjson.encode(fields) end
    redis.call('XADD', kfeed, 'MAXLEN', '~', ARGV[3], '*',
      'kind', 'resync', 'obj', ARGV[2], 'rev', int(rev), 'c', '', 'q', '0', 'fields', fjson)
    return {rev, 1, all}
  end
end

if since >= 0 and since <= rev then
  if since == rev then return {rev, 0, false} end
  local n = rev - since
  local entries = redis.call('LRANGE', kl, 0, n - 1)
  if #entries == n then
    local out = {rev, 0, false}
    for i = 1, n do out[#out + 1] = entries[i] end
    return out
  end
end
if all == nil then all = redis.call('HGETALL', kf) end
return {rev, 0, all}
