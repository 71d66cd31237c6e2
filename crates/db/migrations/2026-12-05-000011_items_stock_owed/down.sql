ALTER TABLE items DROP COLUMN stock_owed;
