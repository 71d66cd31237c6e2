-- The item's waiting room (issue 23): whether a purchase needs a pass from it, how many
-- buyers it keeps admitted at once (NULL: as many as the units still available) and
-- how long an admitted buyer has to buy.
ALTER TABLE items
  ADD COLUMN waiting_room BOOLEAN NOT NULL DEFAULT FALSE,
  ADD COLUMN max_admitted INT UNSIGNED NULL,
  ADD COLUMN pass_secs INT UNSIGNED NOT NULL DEFAULT 120;
