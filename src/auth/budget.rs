//! The wrong-token budget ([`WrongTokenBudget`]): how many wrong tokens
//! are checked per second, per client address first ([`PeerKey`]), then
//! from a share common to all addresses.
//!
//! A check is taken from the budget before a token is compared, under one
//! short lock, and given back if the token was right (only wrong ones
//! count); when both the address's share and the shared one are spent the
//! token is not compared at all ([`super::Verdict::Flood`]). The Unix
//! socket never reaches this file: its clients are trusted and never
//! charged (see [`super::Gate`]). The whole policy is described in the
//! [module doc](super).

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Wrong tokens checked per second for one client address before its
/// tokens are charged to the shared [`WRONG_TOKENS_PER_SECOND`].
pub const WRONG_TOKENS_PER_PEER: u32 = 5;

/// Wrong tokens checked per second beyond each address's own share, all
/// addresses together.
pub const WRONG_TOKENS_PER_SECOND: u32 = 20;

/// Client addresses given their own share in one second. Past that many
/// (a flood from more addresses than this within a second), a new
/// address's tokens are charged to the shared budget only. Bounds the
/// table to about 200 KiB.
pub const TRACKED_PEERS: usize = 4096;

/// Whose share a wrong token is charged to: an IPv4 address, or the /64
/// prefix of an IPv6 address (one host usually holds a whole /64, so a
/// share per IPv6 address would give one attacker billions of them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerKey {
    /// An IPv4 client (or an IPv4-mapped IPv6 one).
    V4(u32),
    /// The first 64 bits of an IPv6 client's address.
    V6(u64),
}

impl PeerKey {
    /// The share `ip` is charged to.
    pub fn of(ip: IpAddr) -> PeerKey {
        match ip {
            IpAddr::V4(v4) => PeerKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => PeerKey::V4(u32::from(v4)),
                None => PeerKey::V6((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

/// The budget of wrong tokens: a one-second window, the checks each
/// address took from its own share in it, and those taken from the shared
/// one. One short lock per token presented (never per request), so it
/// costs nothing on the common path.
#[derive(Debug)]
pub struct WrongTokenBudget {
    window: Mutex<Window>,
}

#[derive(Debug)]
struct Window {
    started: Instant,
    shared: u32,
    peers: HashMap<PeerKey, u32>,
}

impl Default for WrongTokenBudget {
    fn default() -> Self {
        WrongTokenBudget {
            window: Mutex::new(Window {
                started: Instant::now(),
                shared: 0,
                peers: HashMap::new(),
            }),
        }
    }
}

impl WrongTokenBudget {
    /// Takes one check before a token from `peer` is compared: from the
    /// address's own share, else from the shared one; `None` when both
    /// are spent. Taking it first, under the one lock, means request
    /// threads checking tokens at the same moment can never check more
    /// than the budget between them.
    pub(super) fn reserve(&self, peer: PeerKey) -> Option<BudgetSlot> {
        let mut w = self.window.lock();
        let now = Instant::now();
        if now.saturating_duration_since(w.started) >= Duration::from_secs(1) {
            w.started = now;
            w.shared = 0;
            // Keeps the table's memory (bounded by TRACKED_PEERS).
            w.peers.clear();
        }
        let tracked = w.peers.len() < TRACKED_PEERS || w.peers.contains_key(&peer);
        if tracked {
            let own = w.peers.entry(peer).or_insert(0);
            if *own < WRONG_TOKENS_PER_PEER {
                *own += 1;
                return Some(BudgetSlot {
                    window: w.started,
                    from: Some(peer),
                });
            }
        }
        if w.shared >= WRONG_TOKENS_PER_SECOND {
            return None;
        }
        w.shared += 1;
        Some(BudgetSlot {
            window: w.started,
            from: None,
        })
    }

    /// Gives a slot back: the token was right, and only wrong ones count.
    /// A slot of a window that has ended meanwhile is not given back.
    pub(super) fn refund(&self, slot: BudgetSlot) {
        let mut w = self.window.lock();
        if w.started != slot.window {
            return;
        }
        match slot.from {
            Some(peer) => {
                if let Some(own) = w.peers.get_mut(&peer) {
                    *own = own.saturating_sub(1);
                }
            }
            None => w.shared = w.shared.saturating_sub(1),
        }
    }
}

/// One token check taken from a [`WrongTokenBudget`] window: from an
/// address's own share, or (`None`) from the shared one.
#[derive(Debug)]
pub(super) struct BudgetSlot {
    window: Instant,
    from: Option<PeerKey>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(last: u8) -> PeerKey {
        PeerKey::of(IpAddr::from([127, 0, 0, last]))
    }

    /// Moves the window's start a second back: the next check opens a new one.
    fn age(b: &WrongTokenBudget) {
        b.window.lock().started -= Duration::from_secs(1);
    }

    #[test]
    fn the_wrong_token_budget_refills_each_second() {
        let b = WrongTokenBudget::default();
        for _ in 0..WRONG_TOKENS_PER_PEER + WRONG_TOKENS_PER_SECOND {
            assert!(b.reserve(v4(1)).is_some());
        }
        assert!(b.reserve(v4(1)).is_none());
        age(&b);
        assert!(b.reserve(v4(1)).is_some());
    }

    #[test]
    fn each_address_has_its_own_share_before_the_shared_one() {
        let b = WrongTokenBudget::default();
        // One address spends its share and the shared one...
        for _ in 0..WRONG_TOKENS_PER_PEER + WRONG_TOKENS_PER_SECOND {
            assert!(b.reserve(v4(1)).is_some());
        }
        assert!(b.reserve(v4(1)).is_none());
        // ...every other address still has its own.
        for last in 2..10 {
            for _ in 0..WRONG_TOKENS_PER_PEER {
                assert!(b.reserve(v4(last)).is_some(), "127.0.0.{last}");
            }
            assert!(b.reserve(v4(last)).is_none(), "127.0.0.{last}");
        }
    }

    #[test]
    fn ipv6_shares_go_by_64_bit_prefix_and_mapped_v4_by_address() {
        let a: IpAddr = "2001:db8:1:2::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(PeerKey::of(a), PeerKey::of(b));
        assert_ne!(PeerKey::of(a), PeerKey::of(c));
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().expect("ip");
        assert_eq!(PeerKey::of(mapped), v4(2));
    }

    #[test]
    fn past_the_tracked_addresses_tokens_go_to_the_shared_budget() {
        let b = WrongTokenBudget::default();
        for i in 0..TRACKED_PEERS as u32 {
            assert!(b.reserve(PeerKey::V4(i)).is_some());
        }
        assert_eq!(b.window.lock().peers.len(), TRACKED_PEERS);
        // A new address is not tracked: it draws on the shared budget.
        let stranger = PeerKey::V4(u32::MAX);
        for _ in 0..WRONG_TOKENS_PER_SECOND {
            assert!(b.reserve(stranger).is_some());
        }
        assert!(b.reserve(stranger).is_none());
        assert_eq!(b.window.lock().peers.len(), TRACKED_PEERS, "bounded");
        // A tracked one still has the rest of its own share.
        assert!(b.reserve(PeerKey::V4(0)).is_some());
        age(&b);
        assert!(
            b.reserve(stranger).is_some(),
            "a new window forgets them all"
        );
        assert_eq!(b.window.lock().peers.len(), 1);
    }

    #[test]
    fn a_right_token_gives_its_check_back_but_not_into_a_new_window() {
        let b = WrongTokenBudget::default();
        for _ in 0..WRONG_TOKENS_PER_PEER - 1 {
            assert!(b.reserve(v4(1)).is_some());
        }
        let own = b.reserve(v4(1)).expect("the share's last check");
        b.refund(own);
        assert_eq!(b.window.lock().peers[&v4(1)], WRONG_TOKENS_PER_PEER - 1);
        let own = b.reserve(v4(1)).expect("given back");
        let shared = b.reserve(v4(1)).expect("from the shared budget");
        assert_eq!(b.window.lock().shared, 1);
        b.refund(shared);
        assert_eq!(b.window.lock().shared, 0, "given back to the shared budget");
        age(&b);
        assert!(b.reserve(v4(1)).is_some(), "new window");
        b.refund(own);
        assert_eq!(
            b.window.lock().peers[&v4(1)],
            1,
            "an old window's slot is not refunded"
        );
    }

    #[test]
    fn threads_racing_for_the_budget_never_check_more_than_it_allows() {
        let b = std::sync::Arc::new(WrongTokenBudget::default());
        let start = std::sync::Arc::new(std::sync::Barrier::new(8));
        let taken: u32 = (0..8)
            .map(|_| {
                let (b, start) = (b.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    (0..10).filter(|_| b.reserve(v4(1)).is_some()).count() as u32
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .sum();
        // 80 attempts within one window (they take microseconds, the
        // window is a second; a window that rolls over mid-test allows at
        // most one more budget).
        let budget = WRONG_TOKENS_PER_PEER + WRONG_TOKENS_PER_SECOND;
        assert!(taken == budget || taken == 2 * budget, "{taken} checks");
    }
}
