-- Takes a purchase atomically: every check and every write in one step (Redis runs
-- scripts one at a time, so no lock, no retry, no WATCH conflict).
-- KEYS: stock, meta, bought, outbox, outbox times, idempotency key, void marker,
-- reserved, expiry, waiting-room tickets, waiting-room passes, the buyer's pending orders
-- of this item.
-- ARGV: user id, quantity, order id, event JSON, now (ms), idempotency TTL (0 = none).
-- An idempotency key remembers `order_id:quantity:purchased_at_ms`; reused for another
-- quantity it is refused. A voided order id (see rule_out.lua) does nothing. A sale
-- window is checked against the Redis server's clock (TIME), so every instance agrees;
-- items without one never pay for the call.
if redis.call('EXISTS', KEYS[7]) == 1 then return {'VOID'} end
local ttl = tonumber(ARGV[6])
if ttl > 0 then
  local prior = redis.call('GET', KEYS[6])
  if prior then
    if string.match(prior, '^[^:]*:(%d+)') ~= ARGV[2] then return {'KEY_REUSED', prior} end
    return {'DUPLICATE', prior}
  end
end
local meta = redis.call('HMGET', KEYS[2], 'on_sale', 'limit', 'starts_ms', 'ends_ms',
  'pay_window_ms', 'price', 'room')
if meta[1] ~= '1' then return {'NOT_ON_SALE'} end
local stock = tonumber(redis.call('GET', KEYS[1]))
if not stock then return {'NOT_ON_SALE'} end
local starts, ends = tonumber(meta[3] or '0'), tonumber(meta[4] or '0')
local window = tonumber(meta[5] or '0')
local room = meta[7] == '1'
local now
if starts > 0 or ends > 0 or window > 0 or room then
  local time = redis.call('TIME')
  now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
  if starts > 0 and now < starts then return {'SALE_NOT_STARTED', meta[3]} end
  if ends > 0 and now >= ends then return {'SALE_ENDED', meta[4]} end
end
local quantity = tonumber(ARGV[2])
if quantity > stock then return {'INSUFFICIENT_STOCK', tostring(stock)} end
local limit = tonumber(meta[2] or '0')
if limit > 0 then
  local bought = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0')
  if bought + quantity > limit then
    return {'LIMIT_EXCEEDED', tostring(limit), tostring(bought)}
  end
end
local ticket
if room then
  -- A waiting-room item sells only to a buyer holding an open pass (see queue.lua),
  -- which this purchase uses.
  ticket = redis.call('HGET', KEYS[10], ARGV[1])
  if not ticket then return {'NOT_ADMITTED', 'none'} end
  local code, pass_until = string.match(ticket, '^(%a)|%d+|?(%d*)$')
  if code ~= 'a' or tonumber(pass_until) <= now then
    local state = ({q = 'waiting', u = 'used'})[code] or 'lapsed'
    return {'NOT_ADMITTED', state}
  end
  redis.call('ZREM', KEYS[11], ARGV[1])
  redis.call('HSET', KEYS[10], ARGV[1], 'u' .. string.sub(ticket, 2))
end
redis.call('DECRBY', KEYS[1], quantity)
redis.call('HINCRBY', KEYS[3], ARGV[1], quantity)
local event, pay_by, amount = ARGV[4], nil, nil
if window > 0 then
  -- A reservation: the event gains its deadline and amount due, and the order waits in
  -- the reserved hash and the expiry schedule until it is paid, cancelled or expired.
  pay_by = string.format('%.0f', now + window)
  amount = string.format('%.0f', tonumber(meta[6] or '0') * quantity)
  event = string.sub(event, 1, -2) .. ',"pay_by_ms":' .. pay_by .. ',"amount":' .. amount .. '}'
  redis.call('HSET', KEYS[8], ARGV[3], event)
  redis.call('ZADD', KEYS[9], pay_by, ARGV[3])
end
redis.call('HSET', KEYS[4], ARGV[3], event)
redis.call('ZADD', KEYS[5], ARGV[5], ARGV[3])
-- Listed for the buyer until persisted; the week's TTL only bounds what an outage leaves.
redis.call('SADD', KEYS[12], ARGV[3])
redis.call('EXPIRE', KEYS[12], 604800)
if ttl > 0 then
  redis.call('SET', KEYS[6], ARGV[3] .. ':' .. ARGV[2] .. ':' .. ARGV[5], 'EX', ttl)
end
if pay_by then return {'RESERVED', tostring(stock - quantity), pay_by, amount} end
return {'OK', tostring(stock - quantity)}
