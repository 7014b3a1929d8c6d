-- Atomic commit of one op on one object (docs/dsm-protocol.md, "Commit").
-- KEYS: 1 fields, 2 meta, 3 log, 4 feed, 5 the shard's writer index (one hash tag: one slot)
-- ARGV: 1 obj, 2 client, 3 seq, 4 base (-1: blind), 5 the writes as JSON (for the op log and
--       the feed, encoded by the caller), 6 op log length, 7 feed length, 8 max fields (0: none),
--       9 epoch (the writer's incarnation: a page load; "" for none), 10 owner (the client key
--       owning the object, "" for none), 11 now (unix ms),
--       12... the elements in order, three arguments each: kind ("s" set, "d" del, "e" expect,
--       "a" expect absent), field, value ("" where there is none). Flat arguments spare the
--       script a JSON decode: most of a commit's cost is Lua, not the Redis commands.
-- Returns {"ok", rev, feed id} | {"dup", rev} | {"stale", rev} | {"base_ahead", rev}
--       | {"reused", rev, last seq} | {"expect", rev, field, have|false} | {"fields", rev, count}
-- Seqs and revisions stay below 2^53 (checked by the caller), so Lua's doubles hold them
-- exactly; they are written with int(), since Lua's own number format turns 10^14 into
-- "1e+14".
local kf, km, kl, kfeed, kwr = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local obj, client = ARGV[1], ARGV[2]
local seq, base = tonumber(ARGV[3]), tonumber(ARGV[4])
local loglen, feedlen, maxfields = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local epoch, owner, now = ARGV[9], ARGV[10], ARGV[11]
local function int(n) return string.format('%d', n) end

-- The dedup record of a writer is the meta field "q:<client>" = "<seq> <rev>[ <epoch>]",
-- read with the revision in one call. Within one epoch (one page load of the client key)
-- it deduplicates resends; an op of another epoch (the page reloaded with its token, and
-- numbers from 1 again) must have a seq above the record's, or it is refused with that
-- seq so that the writer renumbers. Seqs are parsed with tonumber, which also reads the
-- "1e+14" an older script wrote; a record that does not parse is ignored rather than
-- failing every later op of that writer.
local qf = 'q:' .. client
local meta = redis.call('HMGET', km, 'rev', 'sig1', 'sig2', qf)
local rev = tonumber(meta[1] or '0')
local sig1, sig2 = tonumber(meta[2] or '0'), tonumber(meta[3] or '0')

if client ~= '' and seq > 0 and meta[4] then
  local a, b, e = string.match(meta[4], '^(%S+) (%S+) ?(%S*)$')
  local lseq, lrev = tonumber(a or ''), tonumber(b or '')
  if lseq and lrev then
    if (e or '') ~= epoch then
      if seq <= lseq then return {'reused', rev, int(lseq)} end
    elseif seq == lseq then
      return {'dup', lrev}
    elseif seq < lseq then
      return {'stale', rev}
    end
  end
end
if base >= 0 and base > rev then return {'base_ahead', rev} end

-- Evaluate elements in order on a view: pending[f] = value, or false for deleted.
local pending, order = {}, {}
local function current(f)
  local p = pending[f]
  if p ~= nil then
    if p == false then return nil end
    return p
  end
  local v = redis.call('HGET', kf, f)
  if v == false then return nil end
  return v
end
for i = 12, #ARGV, 3 do
  local kind, f, v = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if kind == 'e' or kind == 'a' then
    local have = current(f)
    if kind == 'a' then v = nil end
    if have ~= v then return {'expect', rev, f, have or false} end
  else
    if pending[f] == nil then order[#order + 1] = f end
    if kind == 's' then pending[f] = v else pending[f] = false end
  end
end

-- Old values, field count and signature update (48 bits as two 24-bit halves).
local olds = {}
if #order > 0 then olds = redis.call('HMGET', kf, unpack(order)) end
local added, removed = 0, 0
local sets, dels = {}, {}
for i, f in ipairs(order) do
  local old, new = olds[i], pending[f]
  if old then
    local h = redis.sha1hex(f .. '\0' .. old)
    sig1 = bit.bxor(sig1, tonumber(string.sub(h, 1, 6), 16))
    sig2 = bit.bxor(sig2, tonumber(string.sub(h, 7, 12), 16))
  end
  if new then
    local h = redis.sha1hex(f .. '\0' .. new)
    sig1 = bit.bxor(sig1, tonumber(string.sub(h, 1, 6), 16))
    sig2 = bit.bxor(sig2, tonumber(string.sub(h, 7, 12), 16))
    sets[#sets + 1] = f
    sets[#sets + 1] = new
    if not old then added = added + 1 end
  else
    if old then
      dels[#dels + 1] = f
      removed = removed + 1
    end
  end
end
-- HLEN only when the op adds fields to a capped object.
if maxfields > 0 and added > removed then
  local count = redis.call('HLEN', kf) + added - removed
  if count > maxfields then return {'fields', rev, count} end
end
local wjson = ARGV[5]
rev = rev + 1
local meta = {'rev', int(rev), 'sig1', int(sig1), 'sig2', int(sig2)}
if client ~= '' and seq > 0 then
  meta[7], meta[8] = qf, int(seq) .. ' ' .. int(rev)
  if epoch ~= '' then meta[8] = meta[8] .. ' ' .. epoch end
end
-- Every write to the field hash is followed at once by a write to the meta hash. Keyspace
-- events of one script reach a subscriber in order and uninterrupted, so a field event that
-- is not followed by a meta event on the same object was made outside the commit path
-- (docs/dsm-protocol.md, "Writes outside the commit path").
if #sets > 0 then
  redis.call('HSET', kf, unpack(sets))
  redis.call('HSET', km, unpack(meta))
end
if #dels > 0 then
  redis.call('HDEL', kf, unpack(dels))
  redis.call('HSET', km, unpack(meta))
end
if #sets == 0 and #dels == 0 then redis.call('HSET', km, unpack(meta)) end
-- The writer index says who last wrote (or owns) what and when, so that the records of
-- writers gone for good and the objects of pages gone for good can be found without
-- scanning (docs/dsm-protocol.md, "Object life").
if client ~= '' and seq > 0 then redis.call('ZADD', kwr, now, client .. ' ' .. obj) end
if owner ~= '' and (owner ~= client or seq == 0) then redis.call('ZADD', kwr, now, owner .. ' ' .. obj) end
redis.call('LPUSH', kl, '{"rev":' .. int(rev) .. ',"c":' .. cjson.encode(client) .. ',"q":' .. int(seq) .. ',"ops":' .. wjson .. '}')
-- Trim every 16th commit: the log may briefly hold 15 entries more than asked, and most
-- commits save a call.
if rev % 16 == 0 then redis.call('LTRIM', kl, 0, loglen - 1) end
local id = redis.call('XADD', kfeed, 'MAXLEN', '~', feedlen, '*',
  'kind', 'op', 'obj', obj, 'rev', int(rev), 'c', client, 'q', int(seq), 'ops', wjson)
return {'ok', rev, id}
