-- Remove an object whose owner is gone for good (docs/dsm-protocol.md, "Object life"):
-- its fields, meta (revision, signature, dedup records) and op log are deleted, and a
-- "removed" entry goes to the feed so that subscribers start over from revision 0.
-- KEYS: 1 fields, 2 meta, 3 log, 4 feed, 5 the shard's writer index
-- ARGV: 1 obj, 2 the writer index member ("<owner> <obj>"), 3 its score when the sweep read
--       it (unix ms), 4 feed length
-- Returns {"busy"} when the owner wrote (or was written for) since, {"removed"} otherwise.
local kf, km, kl, kfeed, kwr = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local score = tonumber(redis.call('ZSCORE', kwr, ARGV[2]) or '0')
if score > tonumber(ARGV[3]) then return {'busy'} end
redis.call('ZREM', kwr, ARGV[2])
local n = redis.call('DEL', kf, km, kl)
if n > 0 then
  redis.call('XADD', kfeed, 'MAXLEN', '~', ARGV[4], '*',
    'kind', 'removed', 'obj', ARGV[1], 'rev', '0', 'c', '', 'q', '0')
end
return {'removed'}
