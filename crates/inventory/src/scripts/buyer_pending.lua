-- One buyer's pending orders of one item: for each order id in the buyer's set (or just
-- ARGV[1] when given and in it), the id, its outbox event or false, its parked entry or
-- false. Ids found in neither were persisted meanwhile and leave the set.
-- KEYS: the buyer's pending set, outbox, parked.  ARGV: [order id].
local ids
if ARGV[1] then
  ids = {}
  if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then ids[1] = ARGV[1] end
else
  ids = redis.call('SMEMBERS', KEYS[1])
end
local found = {}
for _, id in ipairs(ids) do
  local event = redis.call('HGET', KEYS[2], id)
  local parked = redis.call('HGET', KEYS[3], id)
  if event or parked then
    found[#found + 1] = id
    found[#found + 1] = event
    found[#found + 1] = parked
  else
    redis.call('SREM', KEYS[1], id)
  end
end
return found
