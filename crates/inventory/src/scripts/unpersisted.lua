-- Prepended to sync_stock.lua and rebuild.lua: what Redis sold that MySQL does not have
-- yet, and the stock MySQL's figure leaves after it.
-- unpersisted(outbox, parked, keep): the units of the outbox events and of the parked
-- ones (see units_of), calling keep(order_id, event) for each (order_id is nil for a parked order); an
-- outbox order for which keep returns false is not counted.
-- An event's effect on the stock Redis has and MySQL not yet: a placement took units, a
-- release (cancelled, expired) gave them back, a payment changed none.
local function units_of(event)
  local kind = event['type'] or 'placed'
  if kind == 'placed' then return event['quantity'] end
  if kind == 'cancelled' or kind == 'expired' then return -event['quantity'] end
  return 0
end
local function unpersisted(outbox, parked, keep)
  local units = 0
  local entries = redis.call('HGETALL', outbox)
  for i = 1, #entries, 2 do
    local event = cjson.decode(entries[i + 1])
    if keep(entries[i], event) then units = units + units_of(event) end
  end
  local held = redis.call('HVALS', parked)
  for i = 1, #held do
    local event = cjson.decode(cjson.decode(held[i])['event'])
    keep(nil, event)
    units = units + units_of(event)
  end
  return units
end
-- The stock left of MySQL's after the pending units, never below 0, and the shortfall.
local function stock_left(mysql_stock, pending)
  local left = tonumber(mysql_stock) - pending
  if left < 0 then return 0, -left end
  return left, 0
end
