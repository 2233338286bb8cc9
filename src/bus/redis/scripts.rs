//! The Lua scripts of the Redis bus. Each touches one key, so each runs unchanged on a Cluster.

use redis::Script;

pub(super) struct Scripts {
    pub(super) claim: Script,
    pub(super) release: Script,
    pub(super) fill: Script,
    pub(super) invalidate: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            // Returns the node that held the session before, if any.
            claim: Script::new(
                "local old = redis.call('HGET', KEYS[1], ARGV[1]) \
                 redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) \
                 redis.call('PEXPIRE', KEYS[1], ARGV[3]) \
                 return old",
            ),
            // Removes the entry only if it still names this node (a newer connection elsewhere wins).
            release: Script::new(
                "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then \
                   return redis.call('HDEL', KEYS[1], ARGV[1]) end return 0",
            ),
            // Fills only if the counter is still the one the reader saw at its miss. The TTL set
            // here ends the entry's life: reads never extend it, and only another fill (after
            // another miss and store read) starts a new one.
            fill: Script::new(
                "if (redis.call('HGET', KEYS[1], 'v') or '0') == ARGV[1] then \
                   redis.call('HSET', KEYS[1], 'd', ARGV[2]) redis.call('PEXPIRE', KEYS[1], ARGV[3]) \
                   return 1 end return 0",
            ),
            // Bumps the counter and drops the record; the counter outlives it by one maximum age,
            // far longer than a reader's ticket (one store read).
            invalidate: Script::new(
                "redis.call('HINCRBY', KEYS[1], 'v', 1) redis.call('HDEL', KEYS[1], 'd') \
                 redis.call('PEXPIRE', KEYS[1], ARGV[1]) return 1",
            ),
        }
    }
}
