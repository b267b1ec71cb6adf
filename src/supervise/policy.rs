//! When the supervisor restarts the daemon, and when it gives up: the
//! maths alone, on times passed in, so that the tests run in microseconds.
//!
//! - The delay before a restart starts at [`Policy::base`] (1 s) and
//!   doubles with each restart, up to [`Policy::max`] (1 min).
//! - A daemon that was up for [`Policy::reset_after`] (10 min) before it
//!   died is restarted after the base delay again: it was a new incident,
//!   not the same crash loop.
//! - More than [`Policy::limit`] (10) restarts within [`Policy::window`]
//!   (10 min): the supervisor gives up instead of restarting an 11th time.
//!
//! `TICKD_TEST_SUPERVISE_BASE_MS` (for tests only) replaces the base delay;
//! the maximum stays 60 times the base, so a test of the give-up path
//! takes a second or two instead of minutes. The window, the reset and the
//! limit keep their values.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The test-only variable that scales the delays (see the module doc).
pub const TEST_BASE_VAR: &str = "TICKD_TEST_SUPERVISE_BASE_MS";

/// The rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The first delay.
    pub base: Duration,
    /// The longest delay.
    pub max: Duration,
    /// Up this long: the next delay is `base` again.
    pub reset_after: Duration,
    /// The window restarts are counted in.
    pub window: Duration,
    /// Restarts allowed within `window`.
    pub limit: usize,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
            reset_after: Duration::from_secs(600),
            window: Duration::from_secs(600),
            limit: 10,
        }
    }
}

impl Policy {
    /// The default, or with the base delay of [`TEST_BASE_VAR`].
    pub fn from_env() -> Policy {
        let mut p = Policy::default();
        if let Some(ms) = std::env::var(TEST_BASE_VAR)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            p.base = Duration::from_millis(ms.max(1));
            p.max = p.base * 60;
        }
        p
    }
}

/// What to do after the daemon died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Restart it after `delay`; `in_window` restarts (this one included)
    /// in the last [`Policy::window`].
    Restart {
        /// How long to wait first.
        delay: Duration,
        /// Restarts within the window, this one included.
        in_window: usize,
    },
    /// Too many restarts in the window: `in_window` restarts already.
    GiveUp {
        /// Restarts within the window.
        in_window: usize,
    },
}

/// The restarts made so far.
#[derive(Debug)]
pub struct Restarts {
    policy: Policy,
    /// When each restart in the window was decided, oldest first.
    recent: VecDeque<Instant>,
    /// The delay the next restart gets.
    next_delay: Duration,
}

impl Restarts {
    /// No restart yet.
    pub fn new(policy: Policy) -> Restarts {
        Restarts {
            policy,
            recent: VecDeque::new(),
            next_delay: policy.base,
        }
    }

    /// The daemon died at `now` after being up for `up_for`.
    pub fn after_death(&mut self, now: Instant, up_for: Duration) -> Decision {
        let p = self.policy;
        while self
            .recent
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= p.window)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= p.limit {
            return Decision::GiveUp {
                in_window: self.recent.len(),
            };
        }
        if up_for >= p.reset_after {
            self.next_delay = p.base;
        }
        let delay = self.next_delay;
        self.next_delay = (delay * 2).min(p.max);
        self.recent.push_back(now);
        Decision::Restart {
            delay,
            in_window: self.recent.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn delays(r: &mut Restarts, start: Instant, n: usize, gap: Duration) -> Vec<Decision> {
        (0..n)
            .map(|i| r.after_death(start + gap * i as u32, Duration::ZERO))
            .collect()
    }

    #[test]
    fn delays_double_to_a_minute_and_the_eleventh_in_ten_minutes_gives_up() {
        let mut r = Restarts::new(Policy::default());
        let t0 = Instant::now();
        let got = delays(&mut r, t0, 11, S);
        let expect: Vec<u64> = vec![1, 2, 4, 8, 16, 32, 60, 60, 60, 60];
        for (i, secs) in expect.iter().enumerate() {
            assert_eq!(
                got[i],
                Decision::Restart {
                    delay: S * *secs as u32,
                    in_window: i + 1
                },
                "restart {}",
                i + 1
            );
        }
        assert_eq!(got[10], Decision::GiveUp { in_window: 10 });
    }

    #[test]
    fn old_restarts_leave_the_window_and_a_long_run_resets_the_delay() {
        let mut r = Restarts::new(Policy::default());
        let t0 = Instant::now();
        // 10 restarts a minute apart: the 11th, 10 min after the first,
        // finds the first out of the window.
        let got = delays(&mut r, t0, 10, Duration::from_secs(60));
        assert!(matches!(got[9], Decision::Restart { in_window: 10, .. }));
        let d = r.after_death(t0 + Duration::from_secs(600), Duration::ZERO);
        assert_eq!(
            d,
            Decision::Restart {
                delay: 60 * S,
                in_window: 10
            }
        );
        // Up 10 minutes: back to the base delay.
        let d = r.after_death(t0 + Duration::from_secs(1300), Duration::from_secs(600));
        assert!(
            matches!(d, Decision::Restart { delay, .. } if delay == S),
            "{d:?}"
        );
        // Up a little less: the delay keeps doubling.
        let d = r.after_death(t0 + Duration::from_secs(1301), Duration::from_secs(599));
        assert!(
            matches!(d, Decision::Restart { delay, .. } if delay == 2 * S),
            "{d:?}"
        );
    }

    #[test]
    fn a_test_base_scales_the_delays() {
        let p = Policy {
            base: Duration::from_millis(5),
            max: Duration::from_millis(300),
            ..Policy::default()
        };
        let mut r = Restarts::new(p);
        let got = delays(&mut r, Instant::now(), 8, Duration::ZERO);
        let ms: Vec<u128> = got
            .iter()
            .map(|d| match d {
                Decision::Restart { delay, .. } => delay.as_millis(),
                Decision::GiveUp { .. } => 0,
            })
            .collect();
        assert_eq!(ms, vec![5, 10, 20, 40, 80, 160, 300, 300]);
    }
}
