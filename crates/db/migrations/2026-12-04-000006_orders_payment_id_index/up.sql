-- The payment that paid an order, found by its id: a redelivered payment is recognised
-- from MySQL once Redis has forgotten it (after 7 days, or a Redis that lost data), so
-- it is answered as applied and not refunded. Not unique: MySQL records what Redis
-- decided, and refusing a row here would stall stock-writer.
CREATE INDEX orders_by_payment ON orders (payment_id);
