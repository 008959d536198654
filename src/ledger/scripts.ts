/**
 * The ledger's server-side scripts. Each runs atomically in Redis, so concurrent updaters in any
 * number of processes never lose each other's writes (read-merge-write happens inside Redis).
 *
 * Keys (all scripts): KEYS[1] the date's hash (field = symbol, value = entry JSON), KEYS[2] the
 * date's version counter (INCR on every change), KEYS[3] the set of known dates.
 *
 * Retention: every change sets the expiry of the date's hash and version counter to `ttl` seconds
 * from now (`ttl` 0 removes it, a negative one leaves it), so a date stays as long as it is being used and is dropped by
 * Redis `ttl` after its last change. A date used again after that starts at version 1 (mirror.ts
 * notices).
 *
 * cjson caveats, handled on the TypeScript side: an empty array comes back as `{}` (normalised on
 * read), and numbers are encoded with 14 significant digits.
 */

/**
 * Sets (ttl > 0) or removes (ttl 0) the expiry of the date's hash and version counter; a negative
 * ttl leaves it as it is (a ledger opened without a retention setting).
 */
const RETAIN = `local function retain(ttl)
  if ttl > 0 then
    redis.call('EXPIRE', KEYS[1], ttl)
    redis.call('EXPIRE', KEYS[2], ttl)
  elseif ttl == 0 then
    redis.call('PERSIST', KEYS[1])
    redis.call('PERSIST', KEYS[2])
  end
end
`;

/**
 * ARGV: 1 symbol, 2 patch JSON (a null value deletes the field), 3 now (ISO), 4 date,
 * 5 history item JSON to append or '', 6 patch for the last history item JSON or '',
 * 7 JSON array of statuses that block the update or '', 8 ttl in seconds (0: none, < 0: unchanged).
 * Returns { applied (0|1), entry JSON, version }.
 */
export const UPDATE_LUA = `${RETAIN}
local raw = redis.call('HGET', KEYS[1], ARGV[1])
local entry
if raw then
  entry = cjson.decode(raw)
else
  entry = { symbol = ARGV[1], status = 'pending', attempts = 0, costUsd = 0, history = {} }
end
if raw and ARGV[7] ~= '' then
  for _, s in ipairs(cjson.decode(ARGV[7])) do
    if entry.status == s then
      return { 0, raw, tonumber(redis.call('GET', KEYS[2]) or '0') }
    end
  end
end
for k, v in pairs(cjson.decode(ARGV[2])) do
  if v == cjson.null then entry[k] = nil else entry[k] = v end
end
if type(entry.history) ~= 'table' then entry.history = {} end
if ARGV[6] ~= '' then
  local last = entry.history[#entry.history]
  if type(last) == 'table' then
    for k, v in pairs(cjson.decode(ARGV[6])) do
      if v == cjson.null then last[k] = nil else last[k] = v end
    end
  end
end
if ARGV[5] ~= '' then
  table.insert(entry.history, cjson.decode(ARGV[5]))
end
entry.symbol = ARGV[1]
entry.updatedAt = ARGV[3]
local out = cjson.encode(entry)
redis.call('HSET', KEYS[1], ARGV[1], out)
redis.call('SADD', KEYS[3], ARGV[4])
local v = redis.call('INCR', KEYS[2])
retain(tonumber(ARGV[8]) or -1)
return { 1, out, v }
`;

/**
 * ARGV: 1 now (ISO), 2 force ('1' | '0'), 3 date, 4 JSON array of plan items
 * {symbol, status, reason?, error?, jobId?, runId?}, 5 ttl in seconds (0: none, < 0: unchanged).
 * An existing `success` entry is kept as it is unless forced; every other item is (re)written as a
 * fresh entry that keeps the old entry's `attempts` and `history`.
 * Returns { version, symbol1, entry1 JSON, symbol2, entry2 JSON, ... }.
 */
export const INIT_LUA = `${RETAIN}
local items = cjson.decode(ARGV[4])
local out = {}
for _, it in ipairs(items) do
  local raw = redis.call('HGET', KEYS[1], it.symbol)
  local old = nil
  if raw then old = cjson.decode(raw) end
  if old and old.status == 'success' and ARGV[2] ~= '1' then
    out[#out + 1] = it.symbol
    out[#out + 1] = raw
  else
    local e = { symbol = it.symbol, status = it.status, attempts = 0, costUsd = 0, history = {}, updatedAt = ARGV[1] }
    if type(it.reason) == 'string' then e.reason = it.reason end
    if type(it.jobId) == 'string' then e.jobId = it.jobId end
    if type(it.runId) == 'string' then e.runId = it.runId end
    if type(it.error) == 'table' then e.error = it.error end
    if old then
      if type(old.attempts) == 'number' then e.attempts = old.attempts end
      if type(old.history) == 'table' then e.history = old.history end
    end
    local enc = cjson.encode(e)
    redis.call('HSET', KEYS[1], it.symbol, enc)
    out[#out + 1] = it.symbol
    out[#out + 1] = enc
  end
end
redis.call('SADD', KEYS[3], ARGV[3])
local v = redis.call('INCR', KEYS[2])
retain(tonumber(ARGV[5]) or -1)
table.insert(out, 1, v)
return out
`;
