-- Gives a counted attempt back. KEYS: the counters (one slot). ARGV[1]: how many of the
-- first KEYS to delete; the others are decremented, never below zero (one may have
-- expired since it was counted).
local cleared = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  if i <= cleared then
    redis.call('DEL', key)
  elseif tonumber(redis.call('GET', key) or '0') > 0 then
    redis.call('DECR', key)
  end
end
return 0
