-- Sets an item's Redis state from MySQL's figures as one atomic step: stock = MySQL stock
-- minus what was sold in Redis and is not persisted yet (the outbox, and parked orders),
-- dropping outbox entries MySQL already has.
-- KEYS: stock, meta, outbox, outbox times, parked, outbox tries.
-- ARGV: MySQL stock, on-sale flag, limit, then the outbox order ids MySQL has.
local persisted = {}
for i = 4, #ARGV do persisted[ARGV[i]] = true end
local entries = redis.call('HGETALL', KEYS[3])
local pending, cleaned = 0, 0
for i = 1, #entries, 2 do
  if persisted[entries[i]] then
    redis.call('HDEL', KEYS[3], entries[i])
    redis.call('ZREM', KEYS[4], entries[i])
    redis.call('HDEL', KEYS[6], entries[i])
    cleaned = cleaned + 1
  else
    pending = pending + cjson.decode(entries[i + 1])['quantity']
  end
end
local parked = redis.call('HVALS', KEYS[5])
for i = 1, #parked do
  pending = pending + cjson.decode(cjson.decode(parked[i])['event'])['quantity']
end
local target = tonumber(ARGV[1]) - pending
local shortfall = 0
if target < 0 then
  shortfall = -target
  target = 0
end
local before = redis.call('GET', KEYS[1]) or '-1'
redis.call('SET', KEYS[1], target)
redis.call('HSET', KEYS[2], 'on_sale', ARGV[2], 'limit', ARGV[3])
return {before, tostring(target), tostring(pending), tostring(cleaned), tostring(shortfall)}
