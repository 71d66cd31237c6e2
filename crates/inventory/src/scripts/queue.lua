-- An item's waiting room: joins a buyer (ARGV[1] = 'join') or reads their ticket
-- ('read'), in one step that first brings the room up to date ("advance"): passes whose
-- time ran out lapse, and buyers are admitted from the head of the queue while fewer
-- than min(max_admitted, units left) hold an open pass.
-- KEYS: meta, stock, reserved, room, tickets, queue, admitted.
-- ARGV: op, user id, random score in [0, 2^48) (a join before the start), how long the
-- room's keys are kept after the sale (ms).
-- A ticket is `<code>|<joined ms>[|<pass until ms>]`, code q (queued), a (admitted),
-- u (used), l (lapsed). The queue orders by score: a buyer who joins before the start
-- gets the random score the service drew (so the queue is a uniform shuffle of them,
-- unseen until the sale opens), a later one 2^48 + its arrival number.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local function int(n) return string.format('%.0f', n) end
local meta = redis.call('HMGET', KEYS[1], 'on_sale', 'starts_ms', 'ends_ms', 'room',
  'room_max', 'pass_ms')
if meta[1] ~= '1' then return {'NOT_FOUND'} end
local stock = tonumber(redis.call('GET', KEYS[2]))
if not stock then return {'NOT_FOUND'} end
if meta[4] ~= '1' then return {'NO_ROOM'} end
local starts, ends = tonumber(meta[2] or '0'), tonumber(meta[3] or '0')
local open = now >= starts
local closed = ends > 0 and now >= ends
local sold_out = stock <= 0 and redis.call('HLEN', KEYS[3]) == 0
local user = ARGV[2]
local ticket = redis.call('HGET', KEYS[5], user)
local wrote = false

if ARGV[1] == 'join' and not closed and not sold_out then
  if not ticket or string.sub(ticket, 1, 1) == 'l' then
    local score
    if open then
      score = int(281474976710656 + redis.call('HINCRBY', KEYS[4], 'arrivals', 1))
    else
      score = ARGV[3]
    end
    redis.call('ZADD', KEYS[6], score, user)
    ticket = 'q|' .. int(now)
    redis.call('HSET', KEYS[5], user, ticket)
    wrote = true
  end
end

if open and not closed then
  for _, lapsed in ipairs(redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', int(now))) do
    redis.call('ZREM', KEYS[7], lapsed)
    local held = redis.call('HGET', KEYS[5], lapsed)
    if held and string.sub(held, 1, 1) == 'a' then
      redis.call('HSET', KEYS[5], lapsed, 'l' .. string.sub(held, 2))
    end
    wrote = true
  end
  local cap = stock
  local max = tonumber(meta[5] or '0')
  if max > 0 and max < cap then cap = max end
  local free = cap - redis.call('ZCARD', KEYS[7])
  if free > 0 then
    local popped = redis.call('ZPOPMIN', KEYS[6], free)
    if #popped > 0 then
      local pass_until = int(now + tonumber(meta[6] or '120000'))
      for i = 1, #popped, 2 do
        local admitted = popped[i]
        redis.call('ZADD', KEYS[7], pass_until, admitted)
        local held = redis.call('HGET', KEYS[5], admitted) or ('q|' .. int(now))
        local joined = string.match(held, '^%a|(%d+)')
        redis.call('HSET', KEYS[5], admitted, 'a|' .. joined .. '|' .. pass_until)
      end
      redis.call('HINCRBY', KEYS[4], 'admitted_total', #popped / 2)
      redis.call('HSETNX', KEYS[4], 'first_admit_ms', int(now))
      ticket = redis.call('HGET', KEYS[5], user)
      wrote = true
    end
  end
end

if wrote then
  local keep_until = math.max(ends, now) + tonumber(ARGV[4])
  for i = 4, 7 do redis.call('PEXPIREAT', KEYS[i], int(keep_until)) end
end

local room = redis.call('HMGET', KEYS[4], 'admitted_total', 'first_admit_ms')
local waiting = redis.call('ZCARD', KEYS[6])
local counts = {tostring(waiting), room[1] or '0', room[2] or '0', int(now)}
local function reply(state, joined, pass_until, rank)
  return {'TICKET', state, joined or '0', pass_until or '0', int(rank or -1),
    counts[1], counts[2], counts[3], counts[4]}
end

if not ticket then
  -- A join after the sale is told so without being queued; a read has no ticket.
  if ARGV[1] == 'join' and closed then return reply('closed') end
  if ARGV[1] == 'join' and sold_out then return reply('sold_out') end
  return {'NO_TICKET'}
end
local code, joined, pass_until = string.match(ticket, '^(%a)|(%d+)|?(%d*)$')
if pass_until == '' then pass_until = nil end
if code == 'u' then return reply('used', joined, pass_until) end
if closed then return reply('closed', joined) end
if sold_out then return reply('sold_out', joined) end
if code == 'q' then
  if not open then return reply('pre_queue', joined) end
  return reply('waiting', joined, nil, redis.call('ZRANK', KEYS[6], user))
end
if code == 'a' and tonumber(pass_until) > now then
  return reply('admitted', joined, pass_until)
end
return reply('lapsed', joined, pass_until)
