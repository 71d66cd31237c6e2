-- Puts a parked order back into the outbox, due at once, for the relay to publish
-- again (after an operator fixed what made stock-writer refuse it).
-- KEYS: parked, outbox, outbox times, outbox tries. ARGV: order id, event JSON, due (ms).
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[3], ARGV[3], ARGV[1])
redis.call('HDEL', KEYS[4], ARGV[1])
return 1
