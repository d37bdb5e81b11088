-- cheapai_window_v1
-- Sliding 60 s windows of per-second buckets for one (key, model): requests and tokens,
-- plus the key's spend budget. One call checks all of them and, when the request is
-- allowed, records it (1 request, `reserve` tokens) in the current second's bucket.
--
-- KEYS[1] requests hash {second -> count}, KEYS[2] tokens hash {second -> tokens},
-- KEYS[3] spend counter (micro-USD). All share the key's hash tag.
-- ARGV: now (unix s), window (s), rpm, tpm, reserve, budget (micro-USD); 0 = no limit.
-- Returns {allowed, denied_by, requests_used, tokens_used, retry_after_s,
--          requests_reset_s, tokens_reset_s}.
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local rpm = tonumber(ARGV[3])
local tpm = tonumber(ARGV[4])
local reserve = tonumber(ARGV[5])
local budget = tonumber(ARGV[6])
local oldest = now - window + 1

-- live buckets, oldest first, and their sum; buckets that left the window are deleted
local function live(key)
  local flat = redis.call('HGETALL', key)
  local buckets, stale, total = {}, {}, 0
  for i = 1, #flat, 2 do
    local second, n = tonumber(flat[i]), tonumber(flat[i + 1])
    if second < oldest then
      stale[#stale + 1] = flat[i]
    else
      total = total + n
      buckets[#buckets + 1] = { second, n }
    end
  end
  if #stale > 0 then redis.call('HDEL', key, unpack(stale)) end
  table.sort(buckets, function(a, b) return a[1] < b[1] end)
  return total, buckets
end

-- seconds until `need` more fit under `limit`, as the oldest buckets leave the window
local function wait_for(buckets, used, need, limit)
  local over = used + need - limit
  for _, b in ipairs(buckets) do
    over = over - b[2]
    if over <= 0 then return math.max(1, b[1] + window - now) end
  end
  return window
end

-- seconds until the window is empty again
local function reset(buckets)
  if #buckets == 0 then return 0 end
  return math.max(1, buckets[#buckets][1] + window - now)
end

if budget > 0 then
  local spent = tonumber(redis.call('GET', KEYS[3]) or '0')
  if spent >= budget then return { 0, 'budget', 0, 0, 0, 0, 0 } end
end

local reqs, req_buckets = live(KEYS[1])
local toks, tok_buckets = live(KEYS[2])
if rpm > 0 and reqs + 1 > rpm then
  return { 0, 'requests', reqs, toks, wait_for(req_buckets, reqs, 1, rpm), reset(req_buckets), reset(tok_buckets) }
end
-- a request larger than the whole token limit passes only into an empty window
if tpm > 0 and toks > 0 and toks + reserve > tpm then
  return { 0, 'tokens', reqs, toks, wait_for(tok_buckets, toks, reserve, tpm), reset(req_buckets), reset(tok_buckets) }
end

redis.call('HINCRBY', KEYS[1], now, 1)
redis.call('EXPIRE', KEYS[1], window + 1)
if reserve > 0 then
  redis.call('HINCRBY', KEYS[2], now, reserve)
  redis.call('EXPIRE', KEYS[2], window + 1)
end
return { 1, '', reqs + 1, toks + reserve, 0, window, window }
