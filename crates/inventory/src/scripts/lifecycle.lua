-- Ends a reservation in one atomic step: paid, cancelled by its buyer, or expired.
-- Scripts run one at a time, so of a payment, a cancel and the expiry worker racing for
-- one order exactly one finds it reserved and wins; the others get the status it left.
-- A release (cancel, expiry) gives the units back to the stock and the buyer's count.
-- Each step writes its event to the outbox (field `<order id>:<type>`) for MySQL, built
-- by the events crate's `ended_event` (prepended to this script).
-- A payment after `pay_by` expires the reservation instead (the buyer paid too late).
-- A buyer's cancels of one item are counted: past the allowance in its window, a cancel
-- is refused (each cancel lets a buyer make the system keep one more ended order).
-- KEYS: reserved, expiry, stock, bought, outbox, outbox times, settled marker, payment,
-- the buyer's cancel count.
-- ARGV: order id, action (pay/cancel/expire), buyer id (cancel; else 0), payment id,
-- amount paid, how long the settled marker and the payment are remembered (seconds),
-- cancels allowed per window (0: any number), the window (seconds).
local order, action = ARGV[1], ARGV[2]
if action == 'pay' then
  local prior = redis.call('GET', KEYS[8])
  if prior then return {'DUPLICATE_PAYMENT', prior} end
end
local held = redis.call('HGET', KEYS[1], order)
if not held then return {'NOT_RESERVED', redis.call('GET', KEYS[7]) or ''} end
local reservation = cjson.decode(held)
if action == 'cancel' and reservation['user_id'] ~= tonumber(ARGV[3]) then
  return {'NOT_FOUND'}
end
if action == 'cancel' and tonumber(ARGV[7]) > 0
    and tonumber(redis.call('GET', KEYS[9]) or '0') >= tonumber(ARGV[7]) then
  return {'TOO_MANY_CANCELS', tostring(math.max(redis.call('TTL', KEYS[9]), 1))}
end
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local status
if action == 'pay' then
  if now > reservation['pay_by_ms'] then
    status = 'expired'
  elseif tonumber(ARGV[5]) ~= reservation['amount'] then
    return {'WRONG_AMOUNT', string.format('%.0f', reservation['amount'])}
  else
    status = 'paid'
  end
elseif action == 'cancel' then
  status = 'cancelled'
else
  if now < reservation['pay_by_ms'] then return {'NOT_DUE'} end
  status = 'expired'
end
redis.call('HDEL', KEYS[1], order)
redis.call('ZREM', KEYS[2], order)
local at = string.format('%.0f', now)
local event = ended_event(held, status, at, status == 'paid' and ARGV[4] or nil)
local settled = status
if status == 'paid' then
  settled = 'paid:' .. ARGV[4]
  redis.call('SET', KEYS[8], order, 'EX', tonumber(ARGV[6]))
else
  if action == 'cancel' and redis.call('INCR', KEYS[9]) == 1 then
    redis.call('EXPIRE', KEYS[9], tonumber(ARGV[8]))
  end
  local units = reservation['quantity']
  local user = string.format('%.0f', reservation['user_id'])
  redis.call('INCRBY', KEYS[3], units)
  if redis.call('HINCRBY', KEYS[4], user, -units) <= 0 then redis.call('HDEL', KEYS[4], user) end
end
local message = order .. ':' .. status
redis.call('HSET', KEYS[5], message, event)
redis.call('ZADD', KEYS[6], at, message)
redis.call('SET', KEYS[7], settled, 'EX', tonumber(ARGV[6]))
return {string.upper(status), event}
