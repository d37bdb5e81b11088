-- cheapai_window_v5
-- Sliding 60 s windows of per-second buckets for one (key, model): requests and tokens,
-- plus the key's spend budget. One call decides a batch of requests, in order, as if each
-- had come alone: each is checked against all the limits and, when allowed, recorded
-- (1 request, its `reserve` tokens) in the current second's bucket, and its worst-case cost
-- added to the spend, before the next is checked.
--
-- KEYS[1] the window hash: `r:<second>` / `t:<second>` buckets, running totals `r` / `t` of
-- the live buckets, and `f`, the oldest second still counted. KEYS[2] spend counter
-- (micro-USD): settled costs plus the reservations of requests not yet settled (settlement
-- adds real cost - reservation, see spend_settle.lua). KEYS[3] the reservations not yet
-- settled, a sorted set of `<reservation id>:<micro-USD>` scored by the second they expire:
-- a reservation nobody settles (the instance died, the reply came too late) is taken back
-- off the spend by the first check after it expires, so a key never drifts towards a false
-- "budget spent". All three share the key's hash tag.
-- ARGV: now (unix s), window (s), rpm, tpm (0 = no limit), budget (micro-USD; -1 = none, 0 =
-- nothing may be spent), hold_until (unix s a reservation made now expires), then per
-- request its reserve (tokens), its worst-case cost (micro-USD) and its reservation id.
-- Returns one {allowed, denied_by, requests_used, tokens_used, retry_after_s,
-- requests_reset_s, tokens_reset_s, reserved_micro_usd, spend_micro_usd} per request (the
-- spend it saw, its own reservation included).
--
-- The allowed path is O(1) (plus the expired reservations, each taken back once): the totals
-- are kept up to date and a bucket is subtracted once, when it leaves the window; only a
-- refusal reads the buckets (to say when to retry).
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local rpm = tonumber(ARGV[3])
local tpm = tonumber(ARGV[4])
local budget = tonumber(ARGV[5])
local hold_until = tonumber(ARGV[6])
local first_reserve = 7
local step = 3
local key = KEYS[1]

-- a counter pushed below 0 (reset while requests were in flight) counts as nothing spent
local spent = 0
if budget >= 0 then
  -- reservations past their expiry come off the spend, once (removed as they are counted)
  local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
  if #expired > 0 then
    local back = 0
    for _, member in ipairs(expired) do
      back = back + tonumber(string.match(member, ':(%d+)$') or '0')
    end
    redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
    if back > 0 then
      redis.call('DECRBY', KEYS[2], string.format('%d', back))
    end
  end
  spent = math.max(0, tonumber(redis.call('GET', KEYS[2]) or '0'))
  if spent >= budget then
    local out = {}
    for _ = first_reserve, #ARGV, step do
      out[#out + 1] = { 0, 'budget', 0, 0, 0, 0, 0, 0, spent }
    end
    return out
  end
end

-- what a request of worst-case cost `cost` holds of the budget until it is settled; nil
-- when it does not fit beside the spend and the reservations before it
local function hold(cost)
  if budget < 0 then return 0 end
  if spent >= budget then return nil end
  -- a request whose worst case exceeds the whole budget could never fit: it takes all that
  -- is left, so it runs alone and overshoots by less than its own cost
  if cost > budget then return budget - spent end
  if spent + cost > budget then return nil end
  return cost
end

local state = redis.call('HMGET', key, 'r', 't', 'f')
local reqs, toks, floor = tonumber(state[1] or '0'), tonumber(state[2] or '0'), tonumber(state[3])
local oldest = now - window + 1
-- an instance whose clock lags behind the others records into the oldest live second
if floor and now < floor then now = floor end

if floor == nil or oldest - floor >= window then
  -- nothing counted, or every bucket has left the window
  if floor ~= nil then redis.call('DEL', key) end
  reqs, toks = 0, 0
  redis.call('HSET', key, 'f', oldest)
elseif floor < oldest then
  -- subtract and delete the buckets that left the window since the last call
  local fields = {}
  for s = floor, oldest - 1 do
    fields[#fields + 1] = 'r:' .. s
    fields[#fields + 1] = 't:' .. s
  end
  local gone = redis.call('HMGET', key, unpack(fields))
  for i = 1, #fields, 2 do
    reqs = reqs - tonumber(gone[i] or '0')
    toks = toks - tonumber(gone[i + 1] or '0')
  end
  redis.call('HDEL', key, unpack(fields))
  redis.call('HSET', key, 'r', reqs, 't', toks, 'f', oldest)
end

-- the live buckets of one kind, oldest first (only read on refusal)
local function buckets(kind)
  local fields = {}
  for s = oldest, now do fields[#fields + 1] = kind .. s end
  local values = redis.call('HMGET', key, unpack(fields))
  local out = {}
  for i, v in ipairs(values) do
    if v then out[#out + 1] = { oldest + i - 1, tonumber(v) } end
  end
  return out
end

-- seconds until `need` more fit under `limit`, as the oldest buckets leave the window
local function wait_for(live, used, need, limit)
  local over = used + need - limit
  for _, b in ipairs(live) do
    over = over - b[2]
    if over <= 0 then return math.max(1, b[1] + window - now) end
  end
  return window
end

-- seconds until the window is empty again
local function reset(live)
  if #live == 0 then return 0 end
  return math.max(1, live[#live][1] + window - now)
end

-- the live buckets of both kinds, read once per batch on its first refusal and kept up to
-- date as the batch records requests
local live_r, live_t
local function record(live, n)
  if not live or n == 0 then return end
  local last = live[#live]
  if last and last[1] == now then last[2] = last[2] + n else live[#live + 1] = { now, n } end
end

local out = {}
local allowed_reqs, allowed_toks, reserved = 0, 0, 0
local holds = {}
for i = first_reserve, #ARGV, step do
  local reserve = tonumber(ARGV[i])
  local held = hold(tonumber(ARGV[i + 1]))
  local denied_by
  if held == nil then
    denied_by = 'budget'
  elseif rpm > 0 and reqs + 1 > rpm then
    denied_by = 'requests'
  elseif tpm > 0 and toks > 0 and toks + reserve > tpm then
    -- a request larger than the whole token limit passes only into an empty window
    denied_by = 'tokens'
  end
  if denied_by == 'budget' then
    -- no retry time: a budget does not refill by itself
    out[#out + 1] = { 0, denied_by, 0, 0, 0, 0, 0, 0, spent }
  elseif denied_by then
    if not live_r then live_r, live_t = buckets('r:'), buckets('t:') end
    local retry
    if denied_by == 'requests' then retry = wait_for(live_r, reqs, 1, rpm)
    else retry = wait_for(live_t, toks, reserve, tpm) end
    out[#out + 1] = { 0, denied_by, reqs, toks, retry, reset(live_r), reset(live_t), 0, spent }
  else
    reqs, toks, spent = reqs + 1, toks + reserve, spent + held
    allowed_reqs, allowed_toks, reserved = allowed_reqs + 1, allowed_toks + reserve, reserved + held
    record(live_r, 1)
    if reserve > 0 then record(live_t, reserve) end
    if held > 0 then
      holds[#holds + 1] = hold_until
      holds[#holds + 1] = ARGV[i + 2] .. ':' .. string.format('%d', held)
    end
    out[#out + 1] = { 1, '', reqs, toks, 0, window, window, held, spent }
  end
end

if allowed_reqs > 0 then
  redis.call('HINCRBY', key, 'r:' .. now, allowed_reqs)
  redis.call('HINCRBY', key, 'r', allowed_reqs)
  if allowed_toks > 0 then
    redis.call('HINCRBY', key, 't:' .. now, allowed_toks)
    redis.call('HINCRBY', key, 't', allowed_toks)
  end
  redis.call('EXPIRE', key, window + 1)
end
if reserved > 0 then
  -- '%d': a large Lua number would otherwise be sent in exponent form, which INCRBY refuses
  redis.call('INCRBY', KEYS[2], string.format('%d', reserved))
  -- no expiry on the set itself: it would drop reservations still counted in the spend;
  -- it empties as they are settled or taken back, and Redis deletes an empty set
  redis.call('ZADD', KEYS[3], unpack(holds))
end
return out
