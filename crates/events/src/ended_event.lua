-- The stock event of a reservation's end, built inside the script that ends it (the
-- event must reach the outbox in the same atomic step). The events crate owns this
-- format as it owns the Rust one: `placed` is the placement's JSON as
-- `StockEvent::to_json` wrote it (its `type` field "placed", its last byte the closing
-- brace; a unit test of the crate holds it to that), and the result parses as a
-- `StockEvent` of type `status` with `at_ms` and, for a payment, `payment_id` (a test
-- in inventory runs this in Redis and parses what it returns). The JSON is edited as
-- text, not decoded and encoded again: Lua's numbers would turn a millisecond time or
-- an id into a float.
local function ended_event(placed, status, at_ms, payment_id)
  local event = string.gsub(placed, '"type":"placed"', '"type":"' .. status .. '"', 1)
  event = string.sub(event, 1, -2) .. ',"at_ms":' .. at_ms
  if payment_id then
    event = event .. ',"payment_id":' .. cjson.encode(payment_id)
  end
  return event .. '}'
end
