ALTER TABLE orders
    DROP COLUMN payment_id,
    DROP COLUMN released_at,
    DROP COLUMN paid_at,
    DROP COLUMN pay_by,
    DROP COLUMN status;

ALTER TABLE items
    DROP COLUMN payment_window_secs,
    DROP COLUMN sale_ends_at,
    DROP COLUMN sale_starts_at;
