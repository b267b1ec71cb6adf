//! Unit tests of the schedule timers: jitter, wall-clock jumps (with
//! injected wall and monotonic clocks), retries, the loop's wake-ups.

use super::*;
use crate::schedule::parse_every;

#[test]
fn jitter_delays_the_timer_not_the_due_time() {
    let mut s = Scheduler::new();
    let every = parse_every("1h").expect("schedule");
    let now = time::now();
    let at = s
        .arm("j", &every, now, Duration::from_secs(600))
        .expect("armed");
    assert_eq!(Some(at), every.next_after(now));
    let start = Instant::now();
    let until_due = Duration::try_from(now.duration_until(at)).expect("future");
    // Step the wheel a second at a time: the timer fires no earlier
    // than the due time and no later than due + jitter.
    let fired_after = (0..=700u64)
        .map(|secs| until_due.saturating_sub(Duration::from_secs(50)) + Duration::from_secs(secs))
        .find(|offset| !s.take_due(start + *offset).is_empty())
        .expect("fired within due + jitter");
    assert!(fired_after + Duration::from_millis(50) >= until_due);
    assert!(fired_after <= until_due + Duration::from_secs(601));
}

fn utc(s: &str) -> Timestamp {
    time::text::parse(s).expect("timestamp")
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn utc_cron(expr: &str) -> Schedule {
    crate::schedule::parse_cron(expr)
        .expect("cron")
        .in_zone(Some(jiff::tz::TimeZone::UTC))
}

fn hour() -> SignedDuration {
    SignedDuration::from_hours(1)
}

/// A scheduler whose last clock check was at `now`.
fn scheduler_at(now: (Timestamp, Instant)) -> Scheduler {
    let mut s = Scheduler::new();
    s.clock = Clock::with_origin(now.1);
    s.reference = now;
    s
}

/// A scheduler checked at wall time `wall` (monotonic: now) with `job`
/// armed on `schedule`; the due time and the monotonic start.
fn armed_at(wall: &str, job: &str, schedule: &Schedule) -> (Scheduler, Timestamp, Instant) {
    let now = (utc(wall), Instant::now());
    let mut s = scheduler_at(now);
    let at = s
        .arm_at(job, schedule, now.0, Duration::ZERO, now)
        .expect("armed");
    (s, at, now.1)
}

/// One second after the last check, the wall clock has also moved by
/// `step`; checks the clock and expects a jump.
fn jump_after_a_second(s: &mut Scheduler, step: SignedDuration) -> ClockJump {
    let (wall, mono) = s.reference;
    s.check_clock((wall + SignedDuration::from_secs(1) + step, mono + secs(1)))
        .expect("a jump")
}

fn fired_jobs(s: &mut Scheduler, at: Instant) -> Vec<Timestamp> {
    s.take_due(at)
        .into_iter()
        .filter_map(|f| match f {
            Fired::Schedule(d) => Some(d.at),
            Fired::Retry(_) => None,
        })
        .collect()
}

#[test]
fn drift_below_the_threshold_is_not_a_jump() {
    let (w0, m0) = (utc("2026-01-01T00:00:00Z"), Instant::now());
    let mut s = scheduler_at((w0, m0));
    let every = parse_every("10s").expect("every");
    s.arm_at("j", &every, w0, Duration::ZERO, (w0, m0));
    let slewed = w0 + SignedDuration::from_secs(60) + SignedDuration::from_millis(30);
    assert_eq!(s.check_clock((slewed, m0 + secs(60))), None);
}

#[test]
fn every_after_a_jump_back_fires_within_one_interval_not_an_hour_later() {
    let (mut s, _, m0) = armed_at(
        "2026-01-01T00:00:05Z",
        "j",
        &parse_every("10s").expect("every"),
    );
    // One second later the wall clock is stepped back an hour.
    let jump = jump_after_a_second(&mut s, -hour());
    assert_eq!(jump.skew, -hour());
    let due = utc("2025-12-31T23:00:10Z");
    assert_eq!(jump.rearmed, vec![("j".to_string(), due)]);
    // Due 4 s later in the new wall time: fires then, not in an hour.
    assert!(fired_jobs(&mut s, m0 + secs(4)).is_empty());
    assert_eq!(fired_jobs(&mut s, m0 + secs(5)), vec![due]);
}

#[test]
fn every_after_a_jump_forward_fires_once_not_a_burst() {
    let (mut s, _, m0) = armed_at(
        "2026-01-01T00:00:05Z",
        "j",
        &parse_every("10s").expect("every"),
    );
    let jump = jump_after_a_second(&mut s, hour());
    assert_eq!(jump.skew, hour());
    let due = utc("2026-01-01T01:00:10Z");
    assert_eq!(jump.rearmed, vec![("j".to_string(), due)]);
    // The 360 slots jumped over are not fired; the next one is.
    assert!(fired_jobs(&mut s, m0 + secs(3)).is_empty());
    assert_eq!(fired_jobs(&mut s, m0 + secs(5)), vec![due]);
}

/// `every = "1h"`, last run 00:00 (armed for 01:00), then the wall
/// clock is stepped by `step` one second later: the due time it is
/// re-armed for and how long after the last run (monotonic) it fires.
fn hourly_after_a_step(step: SignedDuration) -> (Timestamp, Duration) {
    let hourly = parse_every("1h").expect("every");
    let (mut s, at, m0) = armed_at("2026-01-01T00:00:00Z", "j", &hourly);
    assert_eq!(at, utc("2026-01-01T01:00:00Z"));
    let jump = jump_after_a_second(&mut s, step);
    let (_, due) = jump.rearmed[0].clone();
    let fired_at = (0..=3 * 3600)
        .map(|n| m0 + secs(n))
        .find(|t| !fired_jobs(&mut s, *t).is_empty())
        .expect("fired within three hours");
    (due, fired_at - m0)
}

#[test]
fn every_after_a_jump_forward_never_fires_sooner_than_its_interval() {
    // Following the wall-clock grid alone, 01:00 would come a minute
    // after the jump: a run a minute after the last one.
    let (due, gap) = hourly_after_a_step(SignedDuration::from_mins(59));
    assert_eq!(due, utc("2026-01-01T02:00:00Z"), "stays on the grid");
    assert!(gap >= secs(3600), "fired {gap:?} after the last run");
    assert!(gap < secs(2 * 3600), "{gap:?}");
}

#[test]
fn every_after_a_jump_back_stays_on_the_grid_and_keeps_its_interval() {
    let (due, gap) = hourly_after_a_step(SignedDuration::from_mins(-59));
    assert_eq!(due, utc("2026-01-01T01:00:00Z"));
    assert!(gap >= secs(3600), "fired {gap:?} after the last run");
    assert!(gap < secs(2 * 3600), "{gap:?}");
    // A step by a whole number of intervals changes nothing monotonic.
    let (due, gap) = hourly_after_a_step(SignedDuration::from_hours(-2));
    assert_eq!(due, utc("2025-12-31T23:00:00Z"));
    assert_eq!(gap, secs(3600));
}

/// A fixed-time cron job that fired at 03:00 (and was re-armed for the
/// next day), then the clock stepped back by `step`: its new due time.
fn nightly_rearmed_after_stepping_back(step: SignedDuration) -> Timestamp {
    let nightly = utc_cron("0 0 3 * * *");
    let fired = utc("2026-01-01T03:00:00Z");
    let now = (fired + SignedDuration::from_millis(500), Instant::now());
    let mut s = scheduler_at(now);
    let next = s.arm_at("nightly", &nightly, fired, Duration::ZERO, now);
    assert_eq!(next, Some(utc("2026-01-02T03:00:00Z")));
    let jump = jump_after_a_second(&mut s, -step);
    jump.rearmed[0].1
}

#[test]
fn a_fixed_time_cron_slot_that_ran_does_not_run_again_after_a_small_step_back() {
    assert_eq!(
        nightly_rearmed_after_stepping_back(hour()),
        utc("2026-01-02T03:00:00Z")
    );
    // Beyond REPEAT_GUARD the new time is taken as it is (Vixie cron).
    assert_eq!(
        nightly_rearmed_after_stepping_back(SignedDuration::from_hours(4)),
        utc("2026-01-01T03:00:00Z")
    );
}

#[test]
fn the_cron_count_follows_arm_disarm_fire_jump_and_clear() {
    let (w0, m0) = (utc("2026-01-01T00:00:00Z"), Instant::now());
    let mut s = scheduler_at((w0, m0));
    let often = utc_cron("* * * * * *");
    let nightly = utc_cron("0 0 3 * * *");
    let every = parse_every("1h").expect("every");
    s.arm_at("a", &often, w0, Duration::ZERO, (w0, m0));
    s.arm_at("b", &nightly, w0, Duration::ZERO, (w0, m0));
    s.arm_at("c", &every, w0, Duration::ZERO, (w0, m0));
    assert_eq!(s.cron_armed(), 2);
    // Re-arming replaces; an `every` schedule is not counted.
    s.arm_at("a", &often, w0, Duration::ZERO, (w0, m0));
    s.arm_at("c", &every, w0, Duration::ZERO, (w0, m0));
    assert_eq!(s.cron_armed(), 2);
    // A job switched from cron to every leaves the count.
    s.arm_at("b", &every, w0, Duration::ZERO, (w0, m0));
    assert_eq!(s.cron_armed(), 1);
    s.arm_at("b", &nightly, w0, Duration::ZERO, (w0, m0));
    jump_after_a_second(&mut s, hour());
    assert_eq!(s.cron_armed(), 2, "a jump re-arms, it does not add");
    // "a" fires (every second): out of the count until re-armed.
    assert!(!fired_jobs(&mut s, m0 + secs(3)).is_empty());
    assert_eq!(s.cron_armed(), 1);
    s.disarm("b");
    assert_eq!(s.cron_armed(), 0);
    assert_ne!(s.next_wakeup(), Some(s.reference.1 + WALL_CHECK));
    s.arm_at("a", &often, w0, Duration::ZERO, (w0, m0));
    s.clear();
    assert_eq!(s.cron_armed(), 0);
    assert_eq!(s.next_wakeup(), None);
}

#[test]
fn cron_follows_the_wall_clock_back_and_does_not_fire_early() {
    let (mut s, at, m0) = armed_at("2026-01-01T02:59:00Z", "nightly", &utc_cron("0 0 3 * * *"));
    assert_eq!(at, utc("2026-01-01T03:00:00Z"));
    let jump = jump_after_a_second(&mut s, -hour());
    assert_eq!(jump.rearmed, vec![("nightly".to_string(), at)]);
    // Where it was armed to fire (60 s on), it is now 01:59:59 wall.
    assert!(fired_jobs(&mut s, m0 + secs(61)).is_empty());
    assert_eq!(fired_jobs(&mut s, m0 + secs(3660)), vec![at]);
}

#[test]
fn sub_minute_cron_after_a_jump_back_does_not_stall() {
    let (mut s, _, m0) = armed_at("2026-01-01T02:59:55Z", "often", &utc_cron("*/10 * * * * *"));
    let jump = jump_after_a_second(&mut s, -hour());
    let due = utc("2026-01-01T02:00:00Z");
    assert_eq!(jump.rearmed, vec![("often".to_string(), due)]);
    assert_eq!(fired_jobs(&mut s, m0 + secs(5)), vec![due]);
}

#[test]
fn cron_slot_jumped_over_fires_once_at_once() {
    let (mut s, at, m0) = armed_at("2026-01-01T02:59:00Z", "nightly", &utc_cron("0 0 3 * * *"));
    jump_after_a_second(&mut s, hour());
    assert_eq!(fired_jobs(&mut s, m0 + secs(1)), vec![at]);
    assert!(s.is_empty(), "fired once; the daemon re-arms it");
}

#[test]
fn cron_keeps_the_loop_checking_the_wall_clock() {
    let cron = utc_cron("0 0 3 * * *");
    let (w0, m0) = (utc("2026-01-01T00:00:00Z"), Instant::now());
    let mut s = scheduler_at((w0, m0));
    s.arm_at("nightly", &cron, w0, Duration::ZERO, (w0, m0));
    assert_eq!(s.next_wakeup(), Some(m0 + WALL_CHECK));
    let mut s = scheduler_at((w0, m0));
    let every = parse_every("3h").expect("every");
    s.arm_at("j", &every, w0, Duration::ZERO, (w0, m0));
    // The wheel may wake early at its coarse levels; it does not need
    // the minute check.
    let wake = s.next_wakeup().expect("armed");
    assert!(wake > m0 + WALL_CHECK * 10, "{:?}", wake - m0);
}

/// How far after `at` (wall clock) the scheduler's wake-up for it lies,
/// in µs, for a fresh scheduler armed for a 1 s grid.
fn wake_after_due_us() -> i64 {
    let mut s = Scheduler::new();
    let every = parse_every("1s").expect("schedule");
    let at = s
        .arm("j", &every, time::now(), Duration::ZERO)
        .expect("armed");
    // Follow the wake-ups as the loop would (the wheel may first wake
    // it to cascade a coarser slot): the timer never fires before the
    // wake-up the wheel asked for, and fires at its last one.
    let mut wake = s.next_wakeup().expect("armed");
    loop {
        let before = wake
            .checked_sub(Duration::from_micros(1))
            .expect("after origin");
        assert!(s.take_due(before).is_empty());
        if !s.take_due(wake).is_empty() {
            break;
        }
        wake = s.next_wakeup().expect("still armed");
    }
    let wall_now = time::now();
    let inst_now = Instant::now();
    let ahead = SignedDuration::try_from(wake.saturating_duration_since(inst_now)).expect("small");
    time::micros_between(&at, &(wall_now + ahead))
}

#[test]
fn a_due_time_on_the_millisecond_grid_wakes_the_loop_at_its_own_tick() {
    // Rounded up to an unaligned millisecond tick, the wake-up would be
    // anywhere up to 1 ms after the due time; aligned, it is the due
    // time itself, give or take the two clock reads. A try preempted
    // between its clock reads can miss, so most of five must hit.
    let tries: Vec<i64> = (0..5).map(|_| wake_after_due_us()).collect();
    let on_time = tries.iter().filter(|us| us.abs() < 50).count();
    assert!(on_time >= 3, "wake-ups after the due time (µs): {tries:?}");
}

#[test]
fn retries_fire_once_and_clear_cancels_everything() {
    let mut s = Scheduler::new();
    let token = s.arm_retry(Duration::ZERO);
    let every = parse_every("1h").expect("schedule");
    s.arm("j", &every, time::now(), Duration::ZERO);
    assert_eq!(s.len(), 2);
    let fired = s.take_due(Instant::now() + Duration::from_millis(5));
    assert_eq!(fired, vec![Fired::Retry(token)]);
    assert_eq!(s.len(), 1);
    s.arm_retry(Duration::from_secs(5));
    s.clear();
    assert!(s.is_empty());
    assert_eq!(s.next_wakeup(), None);
}

#[test]
fn arm_shared_keeps_the_callers_name_and_arm_copies_it() {
    let mut s = Scheduler::new();
    let every = parse_every("1h").expect("schedule");
    let name: Arc<str> = Arc::from("j");
    s.arm_shared(&name, &every, time::now(), Duration::ZERO)
        .expect("armed");
    let (key, _) = s.armed.get_key_value("j").expect("in the table");
    assert!(Arc::ptr_eq(key, &name), "the table holds the caller's name");
    // Re-armed by name (after it fired, say): a copy, still one entry.
    s.arm("j", &every, time::now(), Duration::ZERO)
        .expect("armed");
    assert_eq!(s.len(), 1);
    let fired = s.take_due(Instant::now() + Duration::from_secs(3601));
    assert!(matches!(&fired[..], [Fired::Schedule(d)] if &*d.job == "j"));
}

/// A herd: jobs due at two instants, all passed, taken a few at a time.
/// The earlier due time comes first, each job exactly once, and while
/// timers are left the loop is told to wake at once.
#[test]
fn take_due_bounded_takes_the_earliest_first_and_leaves_the_rest_due() {
    let now = (utc("2030-01-01T12:00:00Z"), Instant::now());
    let mut s = scheduler_at(now);
    let cron = utc_cron("0 * * * * *");
    // `early-*` are due a minute before `late-*`; both are past when the
    // loop looks, ten minutes on.
    for i in 0..10 {
        s.arm_at(
            &format!("late-{i}"),
            &cron,
            utc("2030-01-01T12:01:00Z"),
            Duration::ZERO,
            now,
        );
        s.arm_at(
            &format!("early-{i}"),
            &cron,
            utc("2030-01-01T12:00:00Z"),
            Duration::ZERO,
            now,
        );
    }
    let later = now.1 + secs(600);
    let mut taken = Vec::new();
    let mut due = Vec::new();
    loop {
        due.clear();
        let left = s.take_due_bounded(later, 3, &mut due);
        assert!(due.len() <= 3, "a slice holds at most the limit");
        taken.extend(due.iter().map(|f| match f {
            Fired::Schedule(d) => (d.job.to_string(), d.at),
            Fired::Retry(t) => panic!("retry {t}"),
        }));
        assert_eq!(left, s.due_left());
        if !left {
            break;
        }
        assert!(
            s.next_wakeup().is_some_and(|t| t <= later),
            "the rest is due now"
        );
        assert!(s.due_left_hint() >= 20 - taken.len());
    }
    assert_eq!(taken.len(), 20, "each job once");
    let names: std::collections::HashSet<_> = taken.iter().map(|(j, _)| j.clone()).collect();
    assert_eq!(names.len(), 20);
    assert!(taken[..10]
        .iter()
        .all(|(j, at)| j.starts_with("early-") && *at == utc("2030-01-01T12:01:00Z")));
    assert!(taken[10..]
        .iter()
        .all(|(j, at)| j.starts_with("late-") && *at == utc("2030-01-01T12:02:00Z")));
    // Taken timers are no longer armed: nothing is due, nothing armed.
    assert!(s.is_empty());
}

/// A job whose due timer a slice left behind, re-armed or disarmed before
/// its turn (a reload, `jobs.put`, `jobs.pause`), loses that timer as it
/// would an armed one.
#[test]
fn a_timer_left_due_is_replaced_by_a_re_arm_and_gone_after_a_disarm() {
    let now = (utc("2030-01-01T12:00:00Z"), Instant::now());
    let mut s = scheduler_at(now);
    let cron = utc_cron("0 * * * * *");
    for job in ["a", "b", "c", "d"] {
        s.arm_at(job, &cron, now.0, Duration::ZERO, now);
    }
    let later = now.1 + secs(90);
    let mut due = Vec::new();
    assert!(s.take_due_bounded(later, 1, &mut due));
    let first = match &due[0] {
        Fired::Schedule(d) => d.job.to_string(),
        Fired::Retry(_) => unreachable!(),
    };
    let left: Vec<&str> = ["a", "b", "c", "d"]
        .into_iter()
        .filter(|j| *j != first)
        .collect();
    s.disarm(left[0]);
    // Re-armed after the due time it was left for: the next minute.
    let next = s.arm_at(
        left[1],
        &cron,
        utc("2030-01-01T12:01:00Z"),
        Duration::ZERO,
        now,
    );
    assert_eq!(next, Some(utc("2030-01-01T12:02:00Z")));
    due.clear();
    assert!(!s.take_due_bounded(later, 10, &mut due));
    let rest: Vec<String> = due
        .iter()
        .map(|f| match f {
            Fired::Schedule(d) => d.job.to_string(),
            Fired::Retry(_) => unreachable!(),
        })
        .collect();
    assert_eq!(rest, vec![left[2].to_string()]);
    assert_eq!(s.len(), 1, "only the re-armed job is armed");
}
