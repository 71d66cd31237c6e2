-- Takes back up to ARGV[1] units of an item's stock, never going below zero (undoing a
-- restock whose MySQL write failed, after some of its units may have sold).
-- KEYS: stock. Returns {units taken back, units that could not be}.
local stock = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local wanted = tonumber(ARGV[1])
local taken = math.max(0, math.min(stock, wanted))
if taken > 0 then redis.call('DECRBY', KEYS[1], taken) end
return {taken, wanted - taken}
