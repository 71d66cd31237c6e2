-- Counts one attempt on every counter given, or on none when any is at its limit.
-- KEYS: the counters (one slot). ARGV[1]: the window in seconds; ARGV[1 + i]: the limit
-- of KEYS[i]. Returns 0 when the attempt was counted, otherwise the seconds until the
-- last of the counters at their limit expires. Every counter expires one window after
-- its first count.
local wait = 0
for i, key in ipairs(KEYS) do
  if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[i + 1]) then
    local ttl = redis.call('TTL', key)
    if ttl < 0 then
      redis.call('EXPIRE', key, ARGV[1])
      ttl = tonumber(ARGV[1])
    end
    wait = math.max(wait, ttl, 1)
  end
end
if wait > 0 then return wait end
for _, key in ipairs(KEYS) do
  redis.call('INCR', key)
  redis.call('EXPIRE', key, ARGV[1], 'NX')
end
return 0
