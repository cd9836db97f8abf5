"""Lua scripts that keep each multi-step change to a work queue atomic on the Redis server.

Every script declares the keys it touches in KEYS, so each one touches only one function's
stream (and at most one heartbeat key). A stream entry has the fields ``d`` (deadline,
milliseconds since the Unix epoch, as the grappler computed it), ``i`` (request id) and ``p``
(the Avro payload).
"""

from __future__ import annotations

PUBLISH = """
-- KEYS[1]: stream. ARGV: max queue length, retention (ms), deadline (ms), request id, payload.
-- Returns the new entry id, or false when the queue is full.
-- Entry ids carry the server time of XADD, and the grappler set the deadline at most
-- `retention` after that, so entries older than `retention` on the server clock have expired.
local now = redis.call('TIME')
local oldest = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - tonumber(ARGV[2])
if oldest < 0 then
    oldest = 0
end
oldest = string.format('%.0f', oldest)
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then
    -- The approximate trim below leaves some expired entries behind; drop them all before
    -- rejecting, so that a queue full of expired entries does not stay full.
    redis.call('XTRIM', KEYS[1], 'MINID', oldest)
    if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then
        return false
    end
end
return redis.call('XADD', KEYS[1], 'MINID', '~', oldest, '*', 'd', ARGV[3], 'i', ARGV[4], 'p', ARGV[5])
"""

START = """
-- KEYS[1]: stream. ARGV: group, consumer, entry id.
-- Acknowledges and deletes the entry if this consumer still owns it; returns 1, else 0.
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1, ARGV[2])
if #pending == 0 then
    return 0
end
redis.call('XACK', KEYS[1], ARGV[1], ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[3])
return 1
"""

REQUEUE = """
-- KEYS[1]: stream. ARGV: group, consumer, entry id, ...
-- Moves each listed entry that this consumer still owns to the tail of the stream, where any
-- consumer can read it again. Returns the number of entries moved.
local moved = 0
for index = 3, #ARGV do
    local id = ARGV[index]
    local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2])
    if #pending > 0 then
        local entry = redis.call('XRANGE', KEYS[1], id, id)
        if #entry > 0 then
            redis.call('XADD', KEYS[1], '*', unpack(entry[1][2]))
            redis.call('XDEL', KEYS[1], id)
            moved = moved + 1
        end
        redis.call('XACK', KEYS[1], ARGV[1], id)
    end
end
return moved
"""

REAP = """
-- KEYS[1]: stream, KEYS[2]: heartbeat key of the consumer. ARGV: group, consumer, batch size.
-- Does nothing and returns false while the heartbeat key exists. Otherwise moves up to `batch
-- size` entries the consumer read but never started to the tail of the stream, acknowledges
-- entries already trimmed away, and removes the consumer from the group once it owns none.
-- Returns {entries moved, entries gone, 1 if the consumer was removed else 0}.
if redis.call('EXISTS', KEYS[2]) == 1 then
    return false
end
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', tonumber(ARGV[3]), ARGV[2])
local moved, gone = 0, 0
for _, item in ipairs(pending) do
    local id = item[1]
    local entry = redis.call('XRANGE', KEYS[1], id, id)
    if #entry > 0 then
        redis.call('XADD', KEYS[1], '*', unpack(entry[1][2]))
        redis.call('XDEL', KEYS[1], id)
        moved = moved + 1
    else
        gone = gone + 1
    end
    redis.call('XACK', KEYS[1], ARGV[1], id)
end
local removed = 0
if #pending < tonumber(ARGV[3]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
    removed = 1
end
return {moved, gone, removed}
"""
