-- When the oldest entry of an outbox was written (Unix ms): a placement's
-- purchased_at_ms, a later step's at_ms; false (nil) for an empty outbox. Read in Redis
-- so that only one number crosses the network, however many orders wait.
-- KEYS: outbox.
local oldest = false
local entries = redis.call('HVALS', KEYS[1])
for i = 1, #entries do
  local event = entries[i]
  local at = tonumber(string.match(event, '"at_ms":(%d+)')
    or string.match(event, '"purchased_at_ms":(%d+)'))
  if at and (not oldest or at < oldest) then oldest = at end
end
return oldest
