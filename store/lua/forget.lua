-- Forget a writer gone for good on an object it does not own (docs/dsm-protocol.md,
-- "Object life"): its dedup record goes, and so do the fields it named (its entries of
-- the players index), as one commit: new revision, op log entry, feed entry, signature.
-- KEYS: 1 fields, 2 meta, 3 log, 4 feed, 5 the shard's writer index
-- ARGV: 1 obj, 2 client, 3 the writer index member ("<client> <obj>"), 4 its score when the
--       sweep read it (unix ms), 5 op log length, 6 feed length, 7... fields to delete
-- Returns {"busy"} when the writer wrote since, {"forgot", rev} otherwise (rev 0: no field
-- was deleted, so no commit was made).
local kf, km, kl, kfeed, kwr = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local function int(n) return string.format('%d', n) end
local score = tonumber(redis.call('ZSCORE', kwr, ARGV[3]) or '0')
if score > tonumber(ARGV[4]) then return {'busy'} end
redis.call('ZREM', kwr, ARGV[3])
redis.call('HDEL', km, 'q:' .. ARGV[2])
if #ARGV < 7 then return {'forgot', 0} end
local names = {}
for i = 7, #ARGV do names[#names + 1] = ARGV[i] end
local olds = redis.call('HMGET', kf, unpack(names))
local meta = redis.call('HMGET', km, 'rev', 'sig1', 'sig2')
local rev = tonumber(meta[1] or '0')
local sig1, sig2 = tonumber(meta[2] or '0'), tonumber(meta[3] or '0')
local dels, ops = {}, {}
for i, f in ipairs(names) do
  if olds[i] then
    local h = redis.sha1hex(f .. '\0' .. olds[i])
    sig1 = bit.bxor(sig1, tonumber(string.sub(h, 1, 6), 16))
    sig2 = bit.bxor(sig2, tonumber(string.sub(h, 7, 12), 16))
    dels[#dels + 1] = f
    ops[#ops + 1] = '{"o":"del","f":' .. cjson.encode(f) .. '}'
  end
end
if #dels == 0 then return {'forgot', 0} end
rev = rev + 1
-- As in the commit script: the field write is followed at once by a meta write, so the
-- keyspace events tell this commit from an outside write.
redis.call('HDEL', kf, unpack(dels))
redis.call('HSET', km, 'rev', int(rev), 'sig1', int(sig1), 'sig2', int(sig2))
local wjson = '[' .. table.concat(ops, ',') .. ']'
redis.call('LPUSH', kl, '{"rev":' .. int(rev) .. ',"c":"","q":0,"ops":' .. wjson .. '}')
if rev % 16 == 0 then redis.call('LTRIM', kl, 0, tonumber(ARGV[5]) - 1) end
redis.call('XADD', kfeed, 'MAXLEN', '~', ARGV[6], '*',
  'kind', 'op', 'obj', ARGV[1], 'rev', int(rev), 'c', '', 'q', '0', 'ops', wjson)
return {'forgot', rev}
