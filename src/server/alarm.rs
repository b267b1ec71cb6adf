//! A sub-millisecond wake-up for the event loop: a `timerfd` in the poll.
//!
//! `epoll_wait` takes its timeout in whole milliseconds, and mio rounds a
//! timeout up so that it never wakes early; a loop that sleeps "until the
//! next timer" that way wakes up to a millisecond after the timer is due.
//! An [`Alarm`] instead arms a `timerfd` on `CLOCK_MONOTONIC` (the clock of
//! `std::time::Instant` on Linux) at the absolute instant of the earliest
//! deadline (`TFD_TIMER_ABSTIME`), registered with the loop's poll: the
//! poll then sleeps without a timeout and the timerfd becomes readable at
//! the due instant, to the kernel's hrtimer precision.
//!
//! The timerfd is re-armed only when the earliest deadline changes, so a
//! loop turn that leaves it unchanged costs no syscall. When the timerfd
//! cannot be created or registered, the alarm falls back to the millisecond
//! poll timeout the loop used before, and says so in the log.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::unix::SourceFd;
use mio::{Interest, Registry, Token};
use rustix::time::{
    clock_gettime, timerfd_create, timerfd_settime, ClockId, Itimerspec, TimerfdClockId,
    TimerfdFlags, TimerfdTimerFlags, Timespec,
};

/// An `Instant` and the `CLOCK_MONOTONIC` reading of the same moment, to
/// turn deadlines into the timerfd's absolute time.
///
/// `Instant` is read first and the raw clock second, so the mapping can
/// only err towards waking late, never early, by the time between the two
/// reads, and it errs that way for every wake-up of the daemon's life.
/// Read once, that time was 3-4 µs (the first raw read pays rustix's
/// one-time vDSO lookup), and a preemption in between would add its whole
/// length; so the pair is read a few times, each bracketed by a second
/// `Instant`, and the tightest kept (40-70 ns measured).
fn monotonic_pair() -> (Instant, Duration) {
    let mut best: Option<(Duration, Instant, Duration)> = None;
    for _ in 0..8 {
        let before = Instant::now();
        let mono = Duration::try_from(clock_gettime(ClockId::Monotonic)).unwrap_or(Duration::ZERO);
        let gap = before.elapsed();
        if best.is_none_or(|(g, _, _)| gap < g) {
            best = Some((gap, before, mono));
        }
    }
    best.map_or_else(
        || (Instant::now(), Duration::ZERO),
        |(_, at, mono)| (at, mono),
    )
}

/// Wakes a poll at an `Instant` with sub-millisecond precision.
#[derive(Debug)]
pub struct Alarm {
    /// The timerfd; `None` after it could not be created or registered
    /// (the alarm then answers with millisecond poll timeouts).
    fd: Option<OwnedFd>,
    /// An `Instant` and the `CLOCK_MONOTONIC` reading taken just after it,
    /// to turn deadlines into the timerfd's absolute time.
    epoch: Instant,
    epoch_mono: Duration,
    /// The deadline the timerfd is armed for.
    armed: Option<Instant>,
    /// `timerfd_settime` calls made (arming and disarming), for tests and
    /// for judging the cost.
    settime_calls: u64,
}

impl Alarm {
    /// Creates the timerfd (non-blocking, close-on-exec). Never fails: if
    /// the kernel refuses, the alarm logs a warning and falls back to
    /// millisecond poll timeouts.
    pub fn new() -> Alarm {
        let fd = match timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        ) {
            Ok(fd) => Some(fd),
            Err(e) => {
                log::warn!("no timerfd ({e}); timers wake the loop with millisecond precision");
                None
            }
        };
        let (epoch, epoch_mono) = monotonic_pair();
        Alarm {
            fd,
            epoch,
            epoch_mono,
            armed: None,
            settime_calls: 0,
        }
    }

    /// Registers the timerfd with `registry` under `token` (readable when
    /// the alarm goes off). On failure the alarm falls back to poll
    /// timeouts; the loop keeps working either way.
    pub fn register(&mut self, registry: &Registry, token: Token) {
        let Some(fd) = self.fd.as_ref() else {
            return;
        };
        let raw = fd.as_raw_fd();
        if let Err(e) = SourceFd(&raw).register(registry, token, Interest::READABLE) {
            log::warn!(
                "cannot register the timerfd ({e}); timers wake the loop with millisecond precision"
            );
            self.fd = None;
        }
    }

    /// Whether the timerfd is in use (false: millisecond poll timeouts).
    pub fn is_precise(&self) -> bool {
        self.fd.is_some()
    }

    /// The timeout to pass to `poll` for the loop to wake at `deadline`
    /// (None: nothing to wake for), arming the timerfd as needed:
    /// - a deadline at or before `now` gives a zero timeout (no syscall);
    /// - a future deadline arms the timerfd, if it is not armed for exactly
    ///   that instant already, and gives no timeout: the timerfd wakes the
    ///   poll;
    /// - no deadline disarms a timerfd that is armed.
    pub fn poll_timeout(&mut self, deadline: Option<Instant>, now: Instant) -> Option<Duration> {
        let Some(deadline) = deadline else {
            self.disarm();
            return None;
        };
        if deadline <= now {
            return Some(Duration::ZERO);
        }
        if self.is_precise() {
            match self.arm(deadline) {
                Ok(()) => return None,
                Err(e) => {
                    log::warn!(
                        "cannot arm the timerfd ({e}); timers wake the loop with millisecond precision"
                    );
                    self.fd = None;
                }
            }
        }
        Some(deadline.saturating_duration_since(now))
    }

    /// Called when the poll reports the alarm's token: consumes the
    /// expiration and forgets the armed deadline, so that the next
    /// [`poll_timeout`](Self::poll_timeout) arms again even for the same
    /// instant (a deadline the loop found not quite reached yet).
    pub fn on_fired(&mut self) {
        self.armed = None;
        if let Some(fd) = self.fd.as_ref() {
            let mut count = [0u8; 8];
            // WouldBlock (already re-armed, or a spurious event) is fine:
            // the only point is to clear the readiness.
            let _ = rustix::io::read(fd, &mut count);
        }
    }

    /// How many times the timerfd was set (armed or disarmed).
    pub fn settime_calls(&self) -> u64 {
        self.settime_calls
    }

    /// Arms the timerfd for `at` unless it already is.
    fn arm(&mut self, at: Instant) -> io::Result<()> {
        if self.armed == Some(at) {
            return Ok(());
        }
        let value = self
            .monotonic_of(at)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "deadline out of range"))?;
        self.settime(value)?;
        self.armed = Some(at);
        Ok(())
    }

    /// Disarms the timerfd if it is armed (an idle loop must not wake).
    fn disarm(&mut self) {
        if self.armed.is_none() {
            return;
        }
        self.armed = None;
        // A zero it_value disarms.
        if let Err(e) = self.settime(Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        }) {
            log::debug!("disarming the timerfd: {e}");
        }
    }

    fn settime(&mut self, value: Timespec) -> io::Result<()> {
        let Some(fd) = self.fd.as_ref() else {
            return Ok(());
        };
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: value,
        };
        self.settime_calls += 1;
        timerfd_settime(fd, TimerfdTimerFlags::ABSTIME, &spec)?;
        Ok(())
    }

    /// `CLOCK_MONOTONIC` time of `at`, never zero (zero would disarm).
    fn monotonic_of(&self, at: Instant) -> Option<Timespec> {
        let mono = match at.checked_duration_since(self.epoch) {
            Some(after) => self.epoch_mono.checked_add(after)?,
            None => self
                .epoch_mono
                .saturating_sub(self.epoch.saturating_duration_since(at)),
        };
        let mono = mono.max(Duration::from_nanos(1));
        Timespec::try_from(mono).ok()
    }
}

impl Default for Alarm {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timer::Clock;
    use mio::{Events, Poll};

    const ALARM: Token = Token(7);

    fn registered() -> (Poll, Alarm) {
        let poll = Poll::new().expect("poll");
        let mut alarm = Alarm::new();
        alarm.register(poll.registry(), ALARM);
        assert!(alarm.is_precise(), "timerfd available on Linux");
        (poll, alarm)
    }

    #[test]
    fn rearms_only_when_the_earliest_deadline_changes() {
        let (_poll, mut alarm) = registered();
        let now = Instant::now();
        let d1 = now + Duration::from_secs(60);
        let d2 = now + Duration::from_secs(30);
        assert_eq!(alarm.poll_timeout(Some(d1), now), None);
        assert_eq!(alarm.settime_calls(), 1);
        // Same earliest deadline on the next turns: no syscall.
        for _ in 0..5 {
            assert_eq!(alarm.poll_timeout(Some(d1), now), None);
        }
        assert_eq!(alarm.settime_calls(), 1);
        assert_eq!(alarm.poll_timeout(Some(d2), now), None);
        assert_eq!(alarm.settime_calls(), 2);
        // Nothing armed any more: disarm once, then nothing.
        assert_eq!(alarm.poll_timeout(None, now), None);
        assert_eq!(alarm.poll_timeout(None, now), None);
        assert_eq!(alarm.settime_calls(), 3);
    }

    #[test]
    fn a_passed_deadline_is_a_zero_timeout_without_a_syscall() {
        let (_poll, mut alarm) = registered();
        let now = Instant::now();
        assert_eq!(alarm.poll_timeout(Some(now), now), Some(Duration::ZERO));
        let earlier = now.checked_sub(Duration::from_millis(5)).unwrap_or(now);
        assert_eq!(alarm.poll_timeout(Some(earlier), now), Some(Duration::ZERO));
        assert_eq!(alarm.settime_calls(), 0);
    }

    #[test]
    fn wakes_the_poll_at_the_deadline_and_the_tick_has_begun() {
        let (mut poll, mut alarm) = registered();
        let clock = Clock::new();
        let mut events = Events::with_capacity(4);
        // The loop arms the alarm at the start of the earliest timer's tick.
        let tick = clock.deadline_tick(Instant::now() + Duration::from_micros(2_500));
        let deadline = clock.instant_of(tick).expect("near tick");
        let timeout = alarm.poll_timeout(Some(deadline), Instant::now());
        assert_eq!(timeout, None, "the timerfd, not a timeout, wakes the poll");
        let woke_by_alarm = loop {
            match poll.poll(&mut events, Some(Duration::from_secs(30))) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => other.expect("poll"),
            }
            if events.iter().any(|e| e.token() == ALARM) {
                break true;
            }
            if events.is_empty() {
                break false; // timed out: the alarm never went off
            }
        };
        assert!(woke_by_alarm);
        let woke = Instant::now();
        assert!(woke >= deadline, "never wakes before the deadline");
        assert!(
            clock.tick_floor(woke) >= tick,
            "the deadline's tick has begun"
        );
    }

    #[test]
    fn after_firing_the_same_deadline_is_armed_again() {
        let (_poll, mut alarm) = registered();
        let now = Instant::now();
        let d = now + Duration::from_secs(60);
        alarm.poll_timeout(Some(d), now);
        alarm.on_fired();
        alarm.poll_timeout(Some(d), now);
        assert_eq!(alarm.settime_calls(), 2);
    }

    #[test]
    fn without_a_timerfd_it_falls_back_to_poll_timeouts() {
        let mut alarm = Alarm::new();
        alarm.fd = None;
        let now = Instant::now();
        let d = now + Duration::from_micros(1_500);
        assert_eq!(
            alarm.poll_timeout(Some(d), now),
            Some(Duration::from_micros(1_500))
        );
        assert_eq!(alarm.poll_timeout(None, now), None);
        assert_eq!(alarm.settime_calls(), 0);
    }
}
