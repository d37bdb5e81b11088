-- cheapai_settle_v1
-- Replaces a request's token reservation with its real count: adds `delta` (real - reserved)
-- to the bucket the reservation went into, if that bucket is still in the window.
-- KEYS[1] tokens hash; ARGV: second, delta. Returns the bucket's new value (or -1).
local current = redis.call('HGET', KEYS[1], ARGV[1])
if not current then return -1 end
local value = math.max(0, tonumber(current) + tonumber(ARGV[2]))
redis.call('HSET', KEYS[1], ARGV[1], value)
return value
