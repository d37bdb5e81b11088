-- cheapai_spend_settle_v1
-- Settles a request's budget reservation: the spend counter gets the request's real cost, and
-- loses the reservation if it is still held. A reservation that expired before its request
-- was settled was already taken off the spend by window.lua, so only the cost is added then:
-- either way the counter ends as settled costs plus live reservations.
-- KEYS[1] spend counter, KEYS[2] reservations (see window.lua). ARGV: reservation member
-- (`<id>:<micro-USD>`, or '' when this store holds none for the request), reserved micro-USD,
-- real cost micro-USD. Returns the new spend.
local delta = tonumber(ARGV[3])
if ARGV[1] ~= '' and redis.call('ZREM', KEYS[2], ARGV[1]) == 1 then
  delta = delta - tonumber(ARGV[2])
end
if delta ~= 0 then
  return redis.call('INCRBY', KEYS[1], string.format('%d', delta))
end
return tonumber(redis.call('GET', KEYS[1]) or '0')
