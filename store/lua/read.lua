-- Consistent read of one object.
-- KEYS: 1 fields, 2 meta, 3 log.  ARGV: 1 since (-1: snapshot only)
-- Returns {rev, flat fields} when a snapshot is needed, or {rev, false, log entries...}
-- (newest first) when the op log covers every revision after since.
local rev = tonumber(redis.call('HGET', KEYS[2], 'rev') or '0')
local since = tonumber(ARGV[1])
if since >= 0 and since <= rev then
  if since == rev then return {rev, false} end
  local n = rev - since
  local entries = redis.call('LRANGE', KEYS[3], 0, n - 1)
  if #entries == n then
    local out = {rev, false}
    for i = 1, n do out[#out + 1] = entries[i] end
    return out
  end
end
return {rev, redis.call('HGETALL', KEYS[1])}
