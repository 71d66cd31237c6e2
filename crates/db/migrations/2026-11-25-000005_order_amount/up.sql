-- A reservation's amount due (price × quantity at purchase, minor units), so that
-- rebuild-redis can restore an open reservation Redis lost with the amount its payment
-- must match.
ALTER TABLE orders ADD COLUMN amount BIGINT UNSIGNED NULL;
