//! The Lua scripts run inside Redis: each is one atomic step of the
//! protocol, so two nodes can never both win one (Redis runs a script
//! with nothing else in between). Loaded at every (re)connect (a
//! restarted Redis has forgotten them) and called by their SHA1.

/// Claims an occurrence.
/// `running` is a hash of the job's runs running in the fleet, by due
/// time (0: a run by hand): with `overlap = "skip"` an occurrence is busy
/// while a run of an *earlier* one runs. A later one running means a node
/// whose clock is ahead ran it early: the on-time nodes still run this
/// one, so clock skew never makes an occurrence missed.
/// KEYS: claim, last, running, pending. ARGV: owner, due ms, ttl ms,
/// skip (1: `overlap = "skip"`), pending field.
/// Answers `won`, `lost` (another node has it), `busy` (skip, and a run
/// of the job is running somewhere) or `stale` (due more than `claim_ttl`
/// before the job's last claimed occurrence: its claim may have expired,
/// so it is never run; a restart with catch-up replays nothing another
/// node ran). A claim key lives twice `claim_ttl`, so every occurrence
/// that is not stale still has its key if it was claimed, whatever the
/// clock skew below `claim_ttl`.
pub const CLAIM: &str = r"
local due = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local last = tonumber(redis.call('GET', KEYS[2]) or '-1')
if redis.call('EXISTS', KEYS[1]) == 1 then return 'lost' end
if due + ttl < last then return 'stale' end
if ARGV[4] == '1' then
  for _, d in ipairs(redis.call('HKEYS', KEYS[3])) do
    if tonumber(d) < due then return 'busy' end
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', 2 * ttl)
if due > last then redis.call('SET', KEYS[2], ARGV[2]) end
if ARGV[4] == '1' then
  redis.call('HSET', KEYS[3], ARGV[2], ARGV[1])
  redis.call('PEXPIRE', KEYS[3], ttl)
end
redis.call('HSET', KEYS[4], ARGV[5], ARGV[1])
return 'won'
";

/// Takes over a claimed occurrence whose owner died before creating its
/// run. KEYS: pending, claim. ARGV: field, dead owner, new
/// owner, ttl ms. 1 if taken (only one node can: the field changes).
pub const TAKE_OVER: &str = r"
if redis.call('HGET', KEYS[1], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[3], 'PX', 2 * tonumber(ARGV[4]))
return 1
";

/// Keeps the newest ARGV[1] runs of one job's index KEYS[1]; the older
/// ones leave it, the global index KEYS[2] and their records (key
/// ARGV[2] .. id).
pub const TRIM: &str = r"
local keep = tonumber(ARGV[1])
local n = redis.call('ZCARD', KEYS[1])
if n <= keep then return 0 end
local old = redis.call('ZRANGE', KEYS[1], 0, n - keep - 1)
for _, id in ipairs(old) do
  redis.call('DEL', ARGV[2] .. id)
  redis.call('ZREM', KEYS[2], id)
end
redis.call('ZREMRANGEBYRANK', KEYS[1], 0, n - keep - 1)
return #old
";

/// Takes back a run queued by an earlier process of this node.
/// KEYS: active. ARGV: run id, `NODE:` (the boot prefix of this node's
/// processes), the new entry. 1 if the entry was still an earlier
/// process's (now this one's); 0 if another node has dealt with it.
pub const ADOPT: &str = r"
local v = redis.call('HGET', KEYS[1], ARGV[1])
if not v or string.sub(v, 1, #ARGV[2]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
return 1
";

/// Every script, for loading.
pub const ALL: [&str; 3] = [CLAIM, TAKE_OVER, TRIM];
