-- What rebuild-redis reads of an item, without reading its history: the units each
-- buyer still holds (unreleased orders, covered by the index) and its open
-- reservations. Both lead with item_id, so they also serve what orders_by_item did.
CREATE INDEX orders_held_by_buyer ON orders (item_id, released_at, user_id, quantity);
CREATE INDEX orders_by_item_status ON orders (item_id, status);
DROP INDEX orders_by_item ON orders;
