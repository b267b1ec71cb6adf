//! When a post to the event loop must wake it, and when it need not.
//!
//! Threads post events on the loop's channels ([`super::LoopEvent`]s, and
//! the request pool's answers on a channel of its own) and wake the loop
//! through its `mio::Waker` (an `eventfd` write). A wake is only needed
//! while the loop sleeps in `poll`, or is about to: while it is awake it
//! drains the channels before it sleeps again anyway. On a busy daemon
//! the request threads post a batch of answers per loop turn, mostly while
//! the loop is still awake; skipping those writes saves a syscall and a
//! spurious `poll` return per turn.
//!
//! The protocol is a flag, `quiet`, up while posts need not wake the loop:
//! - the loop lowers it just before it sleeps, then looks at every channel
//!   once more and does not sleep if anything is there
//!   ([`LoopWake::sleeping`]);
//! - the loop raises it as soon as `poll` returns ([`LoopWake::awake`]);
//! - a poster, after sending, raises it and writes to the waker only if it
//!   was down ([`LoopWake::after_post`]), so one wake per sleep at most.
//!
//! Both sides put a `SeqCst` fence between their channel operation and
//! their flag operation. Of "the loop lowers the flag, then checks the
//! channels" and "the poster sends, then checks the flag", at least one
//! sees the other's write: either the loop finds the event and does not
//! sleep, or the poster finds the flag down and wakes it. No event is left
//! unseen by a sleeping loop.

use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;

/// The loop's waker and the flag that says whether posts must use it.
#[derive(Debug)]
pub struct LoopWake {
    waker: Arc<mio::Waker>,
    quiet: AtomicBool,
}

impl LoopWake {
    /// Starts as if the loop were asleep: the first post wakes it.
    pub fn new(waker: Arc<mio::Waker>) -> LoopWake {
        LoopWake {
            waker,
            quiet: AtomicBool::new(false),
        }
    }

    /// The loop is about to sleep: from now on a post wakes it. Returns
    /// true if `pending` (called after the flag is down) says events are
    /// already waiting; the loop must then not sleep.
    pub fn sleeping(&self, pending: impl FnOnce() -> bool) -> bool {
        self.quiet.store(false, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        pending()
    }

    /// The loop is awake (its `poll` returned): posts need not wake it.
    pub fn awake(&self) {
        self.quiet.store(true, Ordering::SeqCst);
    }

    /// Called by a poster after it has sent its event: wakes the loop if it
    /// may be asleep and nobody has woken it yet.
    pub fn after_post(&self) {
        fence(Ordering::SeqCst);
        if self.quiet.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Err(e) = self.waker.wake() {
            log::error!("could not wake the event loop: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mio::{Events, Poll, Token};
    use std::time::Duration;

    const WAKER: Token = Token(7);

    fn setup() -> (Poll, Events, Arc<LoopWake>) {
        let poll = Poll::new().expect("poll");
        let waker = Arc::new(mio::Waker::new(poll.registry(), WAKER).expect("waker"));
        (
            poll,
            Events::with_capacity(8),
            Arc::new(LoopWake::new(waker)),
        )
    }

    fn woken(poll: &mut Poll, events: &mut Events, within: Duration) -> bool {
        poll.poll(events, Some(within)).expect("poll");
        events.iter().any(|e| e.token() == WAKER)
    }

    #[test]
    fn posts_wake_a_sleeping_loop_once_and_an_awake_loop_never() {
        let (mut poll, mut events, wake) = setup();
        // Fresh: the loop counts as asleep.
        wake.after_post();
        assert!(woken(&mut poll, &mut events, Duration::from_secs(5)));
        // Awake: posts write nothing.
        wake.awake();
        wake.after_post();
        wake.after_post();
        assert!(!woken(&mut poll, &mut events, Duration::ZERO));
        // About to sleep with nothing pending: the next post wakes, once.
        assert!(!wake.sleeping(|| false));
        wake.after_post();
        wake.after_post();
        assert!(woken(&mut poll, &mut events, Duration::from_secs(5)));
        assert!(
            !woken(&mut poll, &mut events, Duration::ZERO),
            "one wake-up only"
        );
        // Pending events are reported so the loop does not sleep.
        assert!(wake.sleeping(|| true));
    }

    /// A poster thread and a loop that sleeps without a timeout. The
    /// poster waits for each event to be taken before it posts the next at
    /// a random moment, so every event is the last one for a while: one
    /// that slips in between the loop's last look at the channel and its
    /// sleep is lost for good, unless the protocol catches it. A lost
    /// wake-up shows as a poll that runs into its (generous) timeout.
    #[test]
    fn no_post_is_lost_between_the_loops_check_and_its_sleep() {
        use std::sync::atomic::AtomicU64;
        let (mut poll, mut events, wake) = setup();
        let (tx, rx) = crossbeam_channel::unbounded::<u64>();
        let taken = Arc::new(AtomicU64::new(0));
        const POSTS: u64 = 20_000;
        let poster = {
            let (wake, taken) = (Arc::clone(&wake), Arc::clone(&taken));
            std::thread::spawn(move || {
                let mut rng = crate::rng::SplitMix64::from_seed(7);
                for i in 0..POSTS {
                    for _ in 0..rng.below_u64(200) {
                        std::hint::spin_loop();
                    }
                    if tx.send(i).is_err() {
                        return;
                    }
                    wake.after_post();
                    while taken.load(Ordering::SeqCst) <= i {
                        std::thread::yield_now();
                    }
                }
            })
        };
        let mut seen = 0;
        while seen < POSTS {
            if !wake.sleeping(|| !rx.is_empty()) {
                poll.poll(&mut events, Some(Duration::from_secs(10)))
                    .expect("poll");
                // Only a wake-up ends this sleep early; running into the
                // timeout means one was lost.
                assert!(
                    !events.is_empty(),
                    "slept 10 s with {seen} of {POSTS} events taken: a wake-up was lost"
                );
            }
            wake.awake();
            while let Ok(i) = rx.try_recv() {
                assert_eq!(i, seen, "events in order");
                seen += 1;
                taken.store(seen, Ordering::SeqCst);
            }
        }
        poster.join().expect("poster");
    }
}
