//! Run ids.
//!
//! On one host they count 1, 2, 3... In cluster mode they must be unique
//! across the fleet and ordered by creation, without a Redis round trip
//! per run: an id is `(Unix ms - EPOCH_MS) * 1024 + node index`, the node
//! index (0..1023) being the node's own, handed out once by Redis
//! ([`crate::cluster`]). A node's ids only grow: a second id in the same
//! millisecond takes the next millisecond's slot. Ids stay below 2^53, so
//! they are exact as JSON numbers and as Redis sorted-set scores.

use crate::time::Timestamp;

/// 2026-01-01T00:00:00Z in Unix milliseconds: fleet ids count from it.
pub const EPOCH_MS: i64 = 1_767_225_600_000;

/// Node indexes a fleet can hand out.
pub const NODE_SLOTS: u64 = 1024;

/// How run ids are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdScheme {
    /// 1, 2, 3...
    #[default]
    Counter,
    /// Fleet ids with this node index.
    Fleet(u16),
}

/// The id after `last` under `scheme`, at wall time `now`.
pub fn next_id(scheme: IdScheme, last: u64, now: Timestamp) -> u64 {
    match scheme {
        IdScheme::Counter => last + 1,
        IdScheme::Fleet(node) => {
            let node = u64::from(node) % NODE_SLOTS;
            let ms = u64::try_from(now.as_millisecond() - EPOCH_MS).unwrap_or(0);
            let by_time = ms * NODE_SLOTS + node;
            let after_last = (last / NODE_SLOTS + 1) * NODE_SLOTS + node;
            by_time.max(after_last)
        }
    }
}

/// Takes the next id after `*last` (and moves `*last` to it).
pub fn take(scheme: IdScheme, last: &mut u64) -> u64 {
    let id = match scheme {
        IdScheme::Counter => *last + 1,
        IdScheme::Fleet(_) => next_id(scheme, *last, crate::time::now()),
    };
    *last = id;
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(ms).expect("time")
    }

    #[test]
    fn counter_counts() {
        assert_eq!(next_id(IdScheme::Counter, 41, at(0)), 42);
    }

    #[test]
    fn fleet_ids_are_ordered_unique_and_exact_as_doubles() {
        let now = EPOCH_MS + 1000;
        let a = next_id(IdScheme::Fleet(3), 0, at(now));
        assert_eq!(a, 1000 * 1024 + 3);
        // The same millisecond twice: the next slot, same node.
        let b = next_id(IdScheme::Fleet(3), a, at(now));
        assert!(b > a);
        assert_eq!(b % 1024, 3);
        // Another node in the same millisecond: a different id.
        let c = next_id(IdScheme::Fleet(4), 0, at(now));
        assert_ne!(c, a);
        // A clock stepped back never repeats an id.
        let d = next_id(IdScheme::Fleet(3), b, at(now - 60_000));
        assert!(d > b);
        // Counter ids from before cluster mode stay below.
        assert!(next_id(IdScheme::Fleet(0), 5000, at(now)) > 5000);
        // A century on, still exact in a double.
        let far = next_id(
            IdScheme::Fleet(1023),
            0,
            at(EPOCH_MS + 100 * 365 * 86_400_000),
        );
        assert!(far < 1 << 53);
    }
}
