CREATE INDEX orders_by_item ON orders (item_id);
DROP INDEX orders_by_item_status ON orders;
DROP INDEX orders_held_by_buyer ON orders;
