-- Adds units to an item's stock as one restock, named so that its undo is exact
-- whatever became of it: the restock's marker says it was applied, and an undo that
-- came first leaves a void marker that makes a late restock do nothing.
-- KEYS: stock, the restock's marker. ARGV: units, marker TTL (seconds).
-- Returns the new stock, or -1 when the restock was voided before it arrived.
if redis.call('GET', KEYS[2]) == 'void' then return -1 end
local now = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('SET', KEYS[2], 'applied', 'EX', tonumber(ARGV[2]))
return now
