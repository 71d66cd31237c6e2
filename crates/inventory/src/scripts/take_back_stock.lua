-- Undoes one restock (see add_stock.lua) whose MySQL write failed: if it was applied,
-- takes back up to its units, never going below zero (some may have sold meanwhile);
-- if it never arrived, voids it so it does nothing should it still arrive. Running it
-- again changes nothing more.
-- KEYS: stock, the restock's marker. ARGV: units, marker TTL (seconds).
-- Returns {units taken back, units that could not be}.
local state = redis.call('GET', KEYS[2])
if state == 'undone' or state == 'void' then return {0, 0} end
if state ~= 'applied' then
  redis.call('SET', KEYS[2], 'void', 'EX', tonumber(ARGV[2]))
  return {0, 0}
end
local stock = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local wanted = tonumber(ARGV[1])
local taken = math.max(0, math.min(stock, wanted))
if taken > 0 then redis.call('DECRBY', KEYS[1], taken) end
redis.call('SET', KEYS[2], 'undone', 'EX', tonumber(ARGV[2]))
return {taken, wanted - taken}
