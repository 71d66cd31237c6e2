-- Sale windows and reservations (issue 13): an item may sell only between two times and
-- hold a unit while its buyer pays; an order then moves reserved → paid | cancelled |
-- expired. Orders of items without a payment step are `confirmed`, as before.
ALTER TABLE items
    ADD COLUMN sale_starts_at DATETIME(3) NULL,
    ADD COLUMN sale_ends_at DATETIME(3) NULL,
    ADD COLUMN payment_window_secs INT UNSIGNED NULL;

ALTER TABLE orders
    ADD COLUMN status VARCHAR(16) CHARACTER SET ascii NOT NULL DEFAULT 'confirmed',
    ADD COLUMN pay_by DATETIME(3) NULL,
    ADD COLUMN paid_at DATETIME(3) NULL,
    ADD COLUMN released_at DATETIME(3) NULL,
    ADD COLUMN payment_id VARCHAR(255) NULL;
