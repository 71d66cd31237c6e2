-- Units sold in Redis and persisted whose decrement the stock could not cover yet: the
-- release (cancel, expiry) or restock that freed them was applied in Redis first but
-- reaches MySQL later (events of one item arrive in any order). The item's stock in
-- MySQL is `stock - stock_owed`; at most one of the two is non-zero.
ALTER TABLE items ADD COLUMN stock_owed INT UNSIGNED NOT NULL DEFAULT 0;
