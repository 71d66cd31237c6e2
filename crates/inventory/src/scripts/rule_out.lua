-- Settles a purchase whose outcome is unknown (a reply that never came): either its
-- order is already in the outbox (or parked), or a void marker makes sure the purchase,
-- should it still reach Redis, does nothing. Scripts run one at a time, so whichever of
-- the two runs first decides, and the answer is final.
-- KEYS: outbox, parked, void marker. ARGV: order id, marker TTL (seconds).
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 'IN_OUTBOX' end
if redis.call('HEXISTS', KEYS[2], ARGV[1]) == 1 then return 'PARKED' end
redis.call('SET', KEYS[3], '1', 'EX', tonumber(ARGV[2]))
return 'RULED_OUT'
