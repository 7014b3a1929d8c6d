-- Adopt a write made outside the commit path (docs/dsm-protocol.md, "Writes outside the
-- commit path"). Recomputes the field signature; if it differs from the one the commit
-- script maintains, bumps rev, resets the op log and publishes a resync with all fields.
-- KEYS: 1 fields, 2 meta, 3 log, 4 feed.  ARGV: 1 obj, 2 feed length
-- Returns {"same", rev} | {"adopted", rev, feed id}
local kf, km, kl, kfeed = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local meta = redis.call('HMGET', km, 'rev', 'sig1', 'sig2')
local rev = tonumber(meta[1] or '0')
local want1, want2 = tonumber(meta[2] or '0'), tonumber(meta[3] or '0')
local all = redis.call('HGETALL', kf)
local sig1, sig2 = 0, 0
local fields = {}
for i = 1, #all, 2 do
  local h = redis.sha1hex(all[i] .. '\0' .. all[i + 1])
  sig1 = bit.bxor(sig1, tonumber(string.sub(h, 1, 6), 16))
  sig2 = bit.bxor(sig2, tonumber(string.sub(h, 7, 12), 16))
  fields[all[i]] = all[i + 1]
end
if sig1 == want1 and sig2 == want2 then return {'same', rev} end
rev = rev + 1
redis.call('HSET', km, 'rev', rev, 'sig1', sig1, 'sig2', sig2)
redis.call('DEL', kl)
local fjson = '{}'
if #all > 0 then fjson = cjson.encode(fields) end
local id = redis.call('XADD', kfeed, 'MAXLEN', '~', ARGV[2], '*',
  'kind', 'resync', 'obj', ARGV[1], 'rev', rev, 'c', '', 'q', 0, 'fields', fjson)
return {'adopted', rev, id}
