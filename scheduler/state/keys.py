"""Every Redis key pattern and every Lua script of unifaas, in one place: the schema.

:mod:`scheduler.state.store` (registry, records, nodes) and :mod:`scheduler.asyncq.queue`
(the async invocation queue) run them. Keys (all under ``unifaas:``)::

    unifaas:blob:{sha256}               STRING  content-addressed bytes (module, artifact,
                                                files tar); written with SET NX, never changed
    unifaas:artifact:{tag}:{module_sha} STRING  sha256 of the precompiled artifact of a module
                                                for engine compat tag ``tag`` (compile cache)
    unifaas:functions                   ZSET    names of the deployed functions, every score
                                                0: a page is a range of names (ZRANGEBYLEX),
                                                its cost the page's, not the set's (a SET
                                                from before is made one by the first script
                                                that touches it, AS_ZSET)
    unifaas:fn:{name}                   HASH    current, latest, created_at, updated_at
    unifaas:fn:{name}:versions          HASH    version number -> JSON {module_sha256,
                                                artifact_sha256, artifact_bytes, files_sha256,
                                                config, created_at}
    unifaas:fn:{name}:recent            LIST    ids of the latest invocations, newest first,
                                                capped at RECORDS_KEPT (the records
                                                that fall off are deleted)
    unifaas:fn:{name}:secrets           HASH    version number -> JSON {name: value} of the
                                                version's secrets (apart from its record,
                                                which holds only their names)
    unifaas:kv:{name}                   HASH    the function's key-value store (all versions)
    unifaas:kv:{name}:usage             HASH    keys, bytes (keys + values) it holds, for
                                                its quota; kept by the KV_* scripts
    unifaas:inv:{id}                    STRING  JSON invocation record, expires after
                                                INVOCATION_TTL_S
    unifaas:nodes                       SET     ids of nodes that registered (pruned lazily)
    unifaas:node:{id}                   STRING  JSON node info, expires after the node's TTL
                                                (a few heartbeats) unless it beats again
    unifaas:changes                     CHANNEL pub/sub: the name of a function whose
                                                current version changed (deploy, rollback,
                                                delete), for the nodes' caches

    unifaas:async:{id}                  HASH    one async call: function, status (queued,
                                                running, succeeded, failed, dead), attempts,
                                                times, node, entry (its stream entry while it
                                                runs), error, request (msgpack, until it ends
                                                well), response (msgpack), callback_url,
                                                callback, public, dead_entry; expires
                                                (ASYNC_TTL) after it ends
    unifaas:async:queue                 STREAM  entries {id} of calls to run, read by the
                                                nodes' consumer group "nodes"; an entry is
                                                acknowledged and deleted when its call ends
    unifaas:async:delayed               ZSET    ids waiting for a retry, scored by when due
    unifaas:async:dead                  STREAM  dead-letters {id, reason}, capped

Function names are ``[a-z0-9-]`` (checked by the registry), so they never contain
the ``:`` separator.
"""

from __future__ import annotations

PREFIX = "unifaas:"

# --- key patterns -------------------------------------------------------------------


def blob_key(sha256: str) -> str:
    return f"{PREFIX}blob:{sha256}"


def artifact_index_key(compat_tag: str, module_sha256: str) -> str:
    return f"{PREFIX}artifact:{compat_tag}:{module_sha256}"


def functions_key() -> str:
    return f"{PREFIX}functions"


FUNCTION_PREFIX = f"{PREFIX}fn:"


def function_key(name: str) -> str:
    return f"{FUNCTION_PREFIX}{name}"


def versions_key(name: str) -> str:
    return f"{function_key(name)}:versions"


def recent_key(name: str) -> str:
    return f"{PREFIX}fn:{name}:recent"


def secrets_key(name: str) -> str:
    return f"{PREFIX}fn:{name}:secrets"


def kv_key(name: str) -> str:
    return f"{PREFIX}kv:{name}"


def kv_usage_key(name: str) -> str:
    return f"{PREFIX}kv:{name}:usage"


def changes_channel() -> str:
    return f"{PREFIX}changes"


INVOCATION_PREFIX = f"{PREFIX}inv:"


def invocation_key(invocation_id: str) -> str:
    return f"{INVOCATION_PREFIX}{invocation_id}"


def nodes_key() -> str:
    return f"{PREFIX}nodes"


def node_key(node_id: str) -> str:
    return f"{PREFIX}node:{node_id}"


# --- Lua scripts ----------------------------------------------------------------------

# Prepended to the scripts that touch the functions key: a SET of names written before it
# became a ZSET is turned into one, atomically, the first time.
AS_ZSET = """
local function as_zset(key)
  if redis.call('TYPE', key)['ok'] == 'set' then
    local names = redis.call('SMEMBERS', key)
    redis.call('DEL', key)
    for _, name in ipairs(names) do redis.call('ZADD', key, 0, name) end
  end
end
"""

# Create the next version of a function and make it current, atomically.
# KEYS[1] function hash, KEYS[2] versions hash, KEYS[3] functions set, KEYS[4] secrets hash
# ARGV[1] name, ARGV[2] version record JSON, ARGV[3] now (unix seconds),
# ARGV[4] the version's secrets JSON, or "" for none
# Returns the new version number (1 for a new function).
CREATE_VERSION_LUA = (
    AS_ZSET
    + """
as_zset(KEYS[3])
local v = redis.call('HINCRBY', KEYS[1], 'latest', 1)
redis.call('HSET', KEYS[2], v, ARGV[2])
if ARGV[4] ~= '' then redis.call('HSET', KEYS[4], v, ARGV[4]) end
redis.call('HSETNX', KEYS[1], 'created_at', ARGV[3])
redis.call('HSET', KEYS[1], 'current', v, 'updated_at', ARGV[3])
redis.call('ZADD', KEYS[3], 0, ARGV[1])
return v
"""
)

# Make an existing version current.
# KEYS[1] function hash, KEYS[2] versions hash
# ARGV[1] target version, or "" for the nearest existing version below the current one
# ARGV[2] now (unix seconds)
# Returns {status, version}: status 0 = done (version is now current),
# 1 = no such function, 2 = the target version does not exist, 3 = nothing before current.
ROLLBACK_LUA = """
local current = tonumber(redis.call('HGET', KEYS[1], 'current'))
if not current then return {1, 0} end
local target
if ARGV[1] == '' then
  local v = current - 1
  while v >= 1 do
    if redis.call('HEXISTS', KEYS[2], v) == 1 then target = v; break end
    v = v - 1
  end
  if not target then return {3, current} end
else
  target = tonumber(ARGV[1])
  if redis.call('HEXISTS', KEYS[2], target) == 0 then return {2, target} end
end
redis.call('HSET', KEYS[1], 'current', target, 'updated_at', ARGV[2])
return {0, target}
"""

# Delete a function with everything it owns: versions, recent-invocation list, secrets,
# key-value store.
# KEYS[1] function hash, KEYS[2..n-1] the keys it owns, KEYS[n] functions set
# ARGV[1] name
# Returns 1 when the function existed, else 0.
DELETE_FUNCTION_LUA = (
    AS_ZSET
    + """
local existed = redis.call('EXISTS', KEYS[1])
for i = 1, #KEYS - 1 do redis.call('DEL', KEYS[i]) end
as_zset(KEYS[#KEYS])
redis.call('ZREM', KEYS[#KEYS], ARGV[1])
return existed
"""
)

# One page of functions: up to ARGV[2] names after ARGV[1] ("" from the first), each with
# its hash and its version numbers, in one round trip.
# KEYS[1] functions zset; ARGV[1] after, ARGV[2] limit, ARGV[3] the function keys' prefix
# Returns {more (1 when names follow the page), the page's last name (the next page's
# ARGV[1]), {{name, {hash field, value, ...}, {version, ...}}, ...}}; a name whose hash
# is gone (deleted meanwhile) is left out.
FUNCTION_PAGE_LUA = (
    AS_ZSET
    + """
as_zset(KEYS[1])
local from = ARGV[1] == '' and '-' or '(' .. ARGV[1]
local limit = tonumber(ARGV[2])
local names = redis.call('ZRANGEBYLEX', KEYS[1], from, '+', 'LIMIT', 0, limit + 1)
local page = {}
for i = 1, math.min(#names, limit) do
  local key = ARGV[3] .. names[i]
  local fields = redis.call('HGETALL', key)
  if #fields > 0 then
    page[#page + 1] = {names[i], fields, redis.call('HKEYS', key .. ':versions')}
  end
end
return {#names > limit and 1 or 0, names[math.min(#names, limit)] or '', page}
"""
)


# Store a batch of invocation records and push their ids on their functions' recent
# lists, in one round trip with one reply to parse (a pipeline has one per command). The
# records that fall off a list are deleted with it: under a steady load a day of records
# (their TTL) would hold gigabytes; this way a function holds at most ARGV[2].
# KEYS: the records' keys, then each record's recent list (same order)
# ARGV[1] TTL seconds, ARGV[2] records kept per function, ARGV[3] the records' key prefix,
# then the records' JSON, then their ids
PUT_INVOCATIONS_LUA = """
local n = #KEYS / 2
local trim = {}
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[3 + i], 'EX', ARGV[1])
  redis.call('LPUSH', KEYS[n + i], ARGV[3 + n + i])
  trim[KEYS[n + i]] = true
end
local keep = tonumber(ARGV[2])
for key in pairs(trim) do
  for _, id in ipairs(redis.call('LRANGE', key, keep, -1)) do
    redis.call('DEL', ARGV[3] .. id)
  end
  redis.call('LTRIM', key, 0, keep - 1)
end
return n
"""


# --- the async invocation queue ----------------------------------------------------------

# The nodes read the queue as one consumer group, each node a consumer named by its id.
ASYNC_GROUP = "nodes"


def async_call_key(async_id: str) -> str:
    return f"{PREFIX}async:{async_id}"


def async_queue_key() -> str:
    return f"{PREFIX}async:queue"


def async_delayed_key() -> str:
    return f"{PREFIX}async:delayed"


def async_dead_key() -> str:
    return f"{PREFIX}async:dead"


# Accept a call: its hash, and an entry on the queue.
# KEYS[1] call hash, KEYS[2] queue
# ARGV[1] id, ARGV[2] function, ARGV[3] request (msgpack), ARGV[4] now (unix s),
# ARGV[5] callback URL or "", ARGV[6] public ("1"/"0"), ARGV[7] hash TTL s
# Returns the entry id.
ENQUEUE_LUA = """
redis.call('HSET', KEYS[1], 'function', ARGV[2], 'status', 'queued', 'attempts', 0,
  'created_at', ARGV[4], 'updated_at', ARGV[4], 'request', ARGV[3],
  'callback_url', ARGV[5], 'public', ARGV[6])
redis.call('EXPIRE', KEYS[1], ARGV[7])
return redis.call('XADD', KEYS[2], '*', 'id', ARGV[1])
"""

# What START, FINISH and RETRY share. Their KEYS: [1] call hash, [2] queue, [3] dead-letter
# stream, [4] delayed set; their ARGV: [1] group, [2] entry id, [3] call id, [4] now,
# [5] TTL s of an ended call, [6] dead-letters kept; then their own from ARGV[7].
# done(): the entry is finished with (acknowledged, deleted); dead(reason): the call
# gives up, onto the dead-letter stream (its request kept for `dead-letters --retry`).
_ENTRY_LUA = """
local function done()
  redis.call('XACK', KEYS[2], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[2], ARGV[2])
end
local function dead(reason)
  local e = redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'id', ARGV[3],
    'reason', reason)
  redis.call('HSET', KEYS[1], 'status', 'dead', 'error', reason, 'finished_at', ARGV[4],
    'updated_at', ARGV[4], 'dead_entry', e)
  redis.call('HDEL', KEYS[1], 'entry')
  redis.call('EXPIRE', KEYS[1], ARGV[5])
  done()
end
"""

# A node took an entry (read or claimed): run the call, or drop the entry, or give up.
# ARGV[7] node id, ARGV[8] most attempts, ARGV[9] most age s (from created_at)
# Returns {0} the entry is stale (the call ended, is running from another entry, or its
# hash expired): dropped; {1, request, attempt, function, callback URL or ""}: run it;
# {2, reason}: it went dead.
START_LUA = (
    _ENTRY_LUA
    + """
local f = redis.call('HMGET', KEYS[1], 'status', 'attempts', 'created_at', 'entry',
  'function', 'callback_url')
local status = f[1]
if (status ~= 'queued' and status ~= 'running')
    or (status == 'running' and f[4] ~= ARGV[2]) then
  done()
  return {0}
end
local attempts = tonumber(f[2])
local reason
if tonumber(ARGV[4]) - tonumber(f[3]) > tonumber(ARGV[9]) then
  reason = 'older than the maximum event age (' .. ARGV[9] .. ' s)'
elseif attempts >= tonumber(ARGV[8]) then
  reason = 'its node went away during attempt ' .. attempts .. ' of ' .. ARGV[8]
end
if reason then
  dead(reason)
  return {2, reason}
end
attempts = attempts + 1
redis.call('HSET', KEYS[1], 'status', 'running', 'attempts', attempts, 'node', ARGV[7],
  'entry', ARGV[2], 'started_at', ARGV[4], 'updated_at', ARGV[4])
return {1, redis.call('HGET', KEYS[1], 'request'), attempts, f[5], f[6] or ''}
"""
)

# The call ended: its response is kept. Only the first ending counts (a call claimed from
# a slow node may end twice).
# ARGV[7] status (succeeded|failed), ARGV[8] HTTP status, ARGV[9] response (msgpack),
# ARGV[10] error or ""
# Returns 1 when recorded, 0 when the call had already ended (nothing changed).
FINISH_LUA = (
    _ENTRY_LUA
    + """
local f = redis.call('HMGET', KEYS[1], 'status', 'entry')
if f[1] ~= 'running' or f[2] ~= ARGV[2] then
  done()
  return 0
end
redis.call('HSET', KEYS[1], 'status', ARGV[7], 'http_status', ARGV[8], 'response', ARGV[9],
  'error', ARGV[10], 'finished_at', ARGV[4], 'updated_at', ARGV[4])
redis.call('HDEL', KEYS[1], 'request', 'entry')
redis.call('EXPIRE', KEYS[1], ARGV[5])
done()
return 1
"""
)

# The attempt failed for a platform reason: retry later, or give up after the last one.
# ARGV[7] when the retry is due (unix s), ARGV[8] error, ARGV[9] most attempts,
# ARGV[10] the attempt's response (msgpack; kept should the call go dead),
# ARGV[11] its HTTP status
# Returns 1 retry scheduled, 2 dead, 0 the call had already ended.
RETRY_LUA = (
    _ENTRY_LUA
    + """
local f = redis.call('HMGET', KEYS[1], 'status', 'entry', 'attempts')
if f[1] ~= 'running' or f[2] ~= ARGV[2] then
  done()
  return 0
end
redis.call('HSET', KEYS[1], 'response', ARGV[10], 'http_status', ARGV[11])
if tonumber(f[3]) >= tonumber(ARGV[9]) then
  dead('gave up after ' .. f[3] .. ' attempts: ' .. ARGV[8])
  return 2
end
redis.call('HSET', KEYS[1], 'status', 'queued', 'error', ARGV[8], 'updated_at', ARGV[4])
redis.call('HDEL', KEYS[1], 'entry')
redis.call('ZADD', KEYS[4], ARGV[7], ARGV[3])
done()
return 1
"""
)

# Retries that are due go back on the queue (atomic: two nodes never both move one).
# KEYS[1] delayed set, KEYS[2] queue
# ARGV[1] now (unix s), ARGV[2] most moved at once
# Returns how many moved.
PROMOTE_LUA = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, id in ipairs(ids) do
  redis.call('XADD', KEYS[2], '*', 'id', id)
  redis.call('ZREM', KEYS[1], id)
end
return #ids
"""

# A dead-letter is queued again, as new: attempts and age start over.
# KEYS[1] call hash, KEYS[2] queue, KEYS[3] dead-letter stream
# ARGV[1] call id, ARGV[2] now (unix s), ARGV[3] hash TTL s
# Returns the call's hash as it was queued (HGETALL's flat list), read in the same script:
# a worker may take the call the moment it is on the queue, and the caller is told what the
# retry did, not what happened next. 0 no such call, -1 the call is not dead.
REQUEUE_LUA = """
local f = redis.call('HMGET', KEYS[1], 'status', 'dead_entry')
if not f[1] then return 0 end
if f[1] ~= 'dead' then return -1 end
if f[2] then redis.call('XDEL', KEYS[3], f[2]) end
redis.call('HSET', KEYS[1], 'status', 'queued', 'attempts', 0, 'created_at', ARGV[2],
  'updated_at', ARGV[2], 'error', '')
redis.call('HDEL', KEYS[1], 'dead_entry', 'entry', 'finished_at', 'node', 'response',
  'http_status')
redis.call('EXPIRE', KEYS[1], ARGV[3])
local queued = redis.call('HGETALL', KEYS[1])
redis.call('XADD', KEYS[2], '*', 'id', ARGV[1])
return queued
"""


# --- a function's key-value store ------------------------------------------------------

# Its usage hash counts the keys and the bytes (key + value lengths) the store holds,
# so a quota check is one read. KEYS[1] store hash, KEYS[2] usage hash for all three.

# Set a key. ARGV[1] key, ARGV[2] value, ARGV[3] most keys, ARGV[4] most bytes.
# Returns 0 done, 6 over the key quota, 7 over the byte quota (hostcalls.Status numbers).
KV_SET_LUA = """
local exists = redis.call('HEXISTS', KEYS[1], ARGV[1])
local old = redis.call('HSTRLEN', KEYS[1], ARGV[1])
local keys = tonumber(redis.call('HGET', KEYS[2], 'keys') or '0')
local bytes = tonumber(redis.call('HGET', KEYS[2], 'bytes') or '0')
local nkeys = keys + 1 - exists
local nbytes = bytes + string.len(ARGV[2]) - old
if exists == 0 then nbytes = nbytes + string.len(ARGV[1]) end
if nkeys > tonumber(ARGV[3]) then return 6 end
if nbytes > tonumber(ARGV[4]) and nbytes > bytes then return 7 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('HSET', KEYS[2], 'keys', nkeys, 'bytes', nbytes)
return 0
"""

# Delete a key. ARGV[1] key. Returns 1 deleted, 0 there was none.
KV_DELETE_LUA = """
local old = redis.call('HSTRLEN', KEYS[1], ARGV[1])
if redis.call('HDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[2], 'keys', -1)
redis.call('HINCRBY', KEYS[2], 'bytes', -(old + string.len(ARGV[1])))
return 1
"""

# Add to a decimal integer value (a missing key counts from 0).
# ARGV[1] key, ARGV[2] delta, ARGV[3] most keys, ARGV[4] most bytes.
# Returns {0, new value}, {6|7, 0} over a quota, {15, 0} the value is not an integer.
KV_INCR_LUA = """
local exists = redis.call('HEXISTS', KEYS[1], ARGV[1])
local old = redis.call('HSTRLEN', KEYS[1], ARGV[1])
local keys = tonumber(redis.call('HGET', KEYS[2], 'keys') or '0')
local bytes = tonumber(redis.call('HGET', KEYS[2], 'bytes') or '0')
if exists == 0 then
  if keys + 1 > tonumber(ARGV[3]) then return {6, 0} end
  if bytes + string.len(ARGV[1]) + 20 > tonumber(ARGV[4]) then return {7, 0} end
end
local ok, new = pcall(redis.call, 'HINCRBY', KEYS[1], ARGV[1], ARGV[2])
if not ok then return {15, 0} end
local grown = redis.call('HSTRLEN', KEYS[1], ARGV[1]) - old
if exists == 0 then
  grown = grown + string.len(ARGV[1])
  redis.call('HINCRBY', KEYS[2], 'keys', 1)
end
redis.call('HINCRBY', KEYS[2], 'bytes', grown)
return {0, new}
"""
