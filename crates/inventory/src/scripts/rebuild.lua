-- Rebuilds an item's Redis state from MySQL's figures after Redis lost data, in one
-- step: stock = MySQL stock minus what Redis sold that MySQL does not have yet (the
-- outbox, and parked orders); each buyer's count = what MySQL has of theirs plus their
-- orders still in Redis; the limit from MySQL. The on-sale flag is left as it is (the
-- caller took the item off sale, and puts it back). (unpersisted.lua is prepended.)
-- KEYS: stock, meta, bought, outbox, parked.
-- ARGV: MySQL stock, limit, then pairs of user id and units MySQL has of theirs.
local counts = {}
local function add(user, units) counts[user] = (counts[user] or 0) + units end
for i = 3, #ARGV, 2 do add(ARGV[i], tonumber(ARGV[i + 1])) end
local pending = unpersisted(KEYS[4], KEYS[5], function(_, event)
  add(string.format('%.0f', event['user_id']), units_of(event))
  return true
end)
local target, shortfall = stock_left(ARGV[1], pending)
local before = redis.call('GET', KEYS[1]) or '-1'
local old = redis.call('HGETALL', KEYS[3])
local old_units = 0
for i = 2, #old, 2 do old_units = old_units + tonumber(old[i]) end
redis.call('DEL', KEYS[3])
local buyers, units = 0, 0
for user, count in pairs(counts) do
  redis.call('HSET', KEYS[3], user, count)
  buyers = buyers + 1
  units = units + count
end
redis.call('SET', KEYS[1], target)
redis.call('HSET', KEYS[2], 'limit', ARGV[2])
return {before, tostring(target), tostring(pending), tostring(shortfall),
  tostring(#old / 2), tostring(old_units), tostring(buyers), tostring(units)}
