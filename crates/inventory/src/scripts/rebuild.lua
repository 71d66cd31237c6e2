-- Rebuilds an item's Redis state from MySQL's figures after Redis lost data, in one
-- step: stock = MySQL stock minus what Redis sold that MySQL does not have yet (the
-- outbox, and parked orders); each buyer's count = what MySQL has of theirs plus their
-- orders still in Redis; the limit from MySQL. The on-sale flag is left as it is (the
-- caller took the item off sale, and puts it back).
-- KEYS: stock, meta, bought, outbox, parked.
-- ARGV: MySQL stock, limit, then pairs of user id and units MySQL has of theirs.
local function add(counts, user, units)
  counts[user] = (counts[user] or 0) + units
end
local counts, pending = {}, 0
for i = 3, #ARGV, 2 do add(counts, ARGV[i], tonumber(ARGV[i + 1])) end
local events = redis.call('HVALS', KEYS[4])
for i = 1, #events do
  local event = cjson.decode(events[i])
  add(counts, tostring(event['user_id']), event['quantity'])
  pending = pending + event['quantity']
end
local parked = redis.call('HVALS', KEYS[5])
for i = 1, #parked do
  local event = cjson.decode(cjson.decode(parked[i])['event'])
  add(counts, tostring(event['user_id']), event['quantity'])
  pending = pending + event['quantity']
end
local target = tonumber(ARGV[1]) - pending
local shortfall = 0
if target < 0 then
  shortfall = -target
  target = 0
end
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
