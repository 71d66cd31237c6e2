-- Puts back reservations MySQL has as open and Redis lost, deciding for each one in the
-- same atomic step that restores it: left alone when Redis still holds it; skipped when
-- Redis knows it ended (its settled marker, or a pay/cancel/expire step still in the
-- outbox or parked for MySQL), since MySQL's `reserved` is then only behind.
-- KEYS: reserved, expiry, outbox, parked, then each order's settled marker.
-- ARGV: triples of order id, placement event JSON, pay_by (Unix ms), in KEYS' order.
-- Returns the ids of the orders put back.
local steps = {'paid', 'cancelled', 'expired'}
local function ended_in_redis(order, settled)
  if redis.call('EXISTS', settled) == 1 then return true end
  for _, step in ipairs(steps) do
    local message = order .. ':' .. step
    if redis.call('HEXISTS', KEYS[3], message) == 1 or redis.call('HEXISTS', KEYS[4], message) == 1 then
      return true
    end
  end
  return false
end
local restored = {}
for i = 1, #ARGV / 3 do
  local order, event, pay_by = ARGV[3 * i - 2], ARGV[3 * i - 1], ARGV[3 * i]
  if redis.call('HEXISTS', KEYS[1], order) == 0 and not ended_in_redis(order, KEYS[4 + i]) then
    redis.call('HSET', KEYS[1], order, event)
    redis.call('ZADD', KEYS[2], pay_by, order)
    restored[#restored + 1] = order
  end
end
return restored
