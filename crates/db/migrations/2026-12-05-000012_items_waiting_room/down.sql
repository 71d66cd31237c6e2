ALTER TABLE items DROP COLUMN pass_secs, DROP COLUMN max_admitted, DROP COLUMN waiting_room;
