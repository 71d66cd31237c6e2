-- Pushes back orders the relay has just republished, each by its own exponential
-- backoff: the n-th republish of an order makes it due again after
-- min(base * 2^(n-1), max) milliseconds. Orders no longer in the outbox are skipped.
-- KEYS: outbox, outbox times, outbox tries. ARGV: now (ms), base (ms), max (ms), order ids...
local now, base, max = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 4, #ARGV do
  local id = ARGV[i]
  if redis.call('HEXISTS', KEYS[1], id) == 1 then
    local tries = redis.call('HINCRBY', KEYS[3], id, 1)
    local delay = math.min(base * 2 ^ math.min(tries - 1, 40), max)
    redis.call('ZADD', KEYS[2], now + delay, id)
  end
end
return 0
