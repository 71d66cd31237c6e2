DROP INDEX orders_by_payment ON orders;
