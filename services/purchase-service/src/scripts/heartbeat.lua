-- One heartbeat of a purchase-service instance (src/membership.rs).
-- KEYS[1]: the registry, a sorted set of instance ids scored by when each one's last
-- heartbeat runs out (Unix ms, this server's clock).
-- ARGV[1]: this instance's id; ARGV[2]: how long its heartbeat lasts (ms).
-- Drops the members whose heartbeat ran out, renews this one, keeps the set itself no
-- longer than its longest-lived member, and returns every live id.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], last[2])
return redis.call('ZRANGE', KEYS[1], 0, -1)
