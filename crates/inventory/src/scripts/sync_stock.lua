-- Sets an item's Redis state from MySQL's figures as one atomic step: stock = MySQL stock
-- minus what was sold in Redis and is not persisted yet (the outbox, and parked orders),
-- dropping outbox entries MySQL already has. (unpersisted.lua is prepended.)
-- KEYS: stock, meta, outbox, outbox times, parked, outbox tries.
-- ARGV: MySQL stock, on-sale flag, limit, then the outbox message ids MySQL has.
local persisted = {}
for i = 4, #ARGV do persisted[ARGV[i]] = true end
local cleaned = 0
local pending = unpersisted(KEYS[3], KEYS[5], function(order_id, _)
  if order_id and persisted[order_id] then
    redis.call('HDEL', KEYS[3], order_id)
    redis.call('ZREM', KEYS[4], order_id)
    redis.call('HDEL', KEYS[6], order_id)
    cleaned = cleaned + 1
    return false
  end
  return true
end)
local target, shortfall = stock_left(ARGV[1], pending)
local before = redis.call('GET', KEYS[1]) or '-1'
redis.call('SET', KEYS[1], target)
redis.call('HSET', KEYS[2], 'on_sale', ARGV[2], 'limit', ARGV[3])
return {before, tostring(target), tostring(pending), tostring(cleaned), tostring(shortfall)}
