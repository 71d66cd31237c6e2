-- Moves an order stock-writer can never persist out of the outbox into the parked set,
-- so the relay stops republishing it; the buyer's index keeps it (still pending).
-- KEYS: outbox, outbox times, outbox tries, parked. ARGV: order id, parked entry JSON.
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[4], ARGV[1], ARGV[2])
return 1
