//! Roles ([`Role`]) and the one table that says which role each JSON-RPC
//! method ([`METHOD_ROLES`]) and each HTTP route ([`ROUTE_ROLES`]) needs;
//! a request its client's role does not cover is refused with a
//! [`Denied`] (`-32003`, HTTP 403), whose message names the role needed.
//!
//! The rule of the table: **read** sees (status, jobs, runs, output,
//! events); **operate** also acts on runs and schedules (runs a job,
//! cancels a run, pauses and resumes a job); **admin** also changes the
//! daemon (reload, shutdown, submit, jobs.put, jobs.delete, the debug
//! hooks). A method the table does not name needs admin
//! ([`role_for_method`]), so a method added later is closed to read and
//! operate tokens until someone classifies it; a unit test fails while a
//! name of the protocol's method list has no entry here.

use std::fmt;

/// What a client may do. Ordered: each role may do everything the roles
/// below it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Sees status, jobs, runs, their output and events.
    Read,
    /// Also runs jobs, cancels runs, pauses and resumes jobs.
    Operate,
    /// Everything: also reloads, shuts down, submits and defines jobs.
    Admin,
}

impl Role {
    /// Every role, lowest first.
    pub const ALL: [Role; 3] = [Role::Read, Role::Operate, Role::Admin];

    /// The name as written in the config (`role = "..."`) and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Operate => "operate",
            Role::Admin => "admin",
        }
    }

    /// The role named `name` (exactly as [`Role::as_str`] writes it).
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == name)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The role each JSON-RPC method needs. `auth` and `ping` are answered
/// before authentication too (see [`super::judge_method`]).
pub const METHOD_ROLES: &[(&str, Role)] = &[
    ("ping", Role::Read),
    ("auth", Role::Read),
    ("status", Role::Read),
    ("jobs.list", Role::Read),
    ("jobs.get", Role::Read),
    ("runs.get", Role::Read),
    ("runs.list", Role::Read),
    ("runs.output", Role::Read),
    ("subscribe", Role::Read),
    ("jobs.run", Role::Operate),
    ("runs.cancel", Role::Operate),
    ("jobs.pause", Role::Operate),
    ("jobs.resume", Role::Operate),
    ("reload", Role::Admin),
    ("shutdown", Role::Admin),
    ("upgrade", Role::Admin),
    ("submit", Role::Admin),
    ("jobs.put", Role::Admin),
    ("jobs.delete", Role::Admin),
    ("debug.kill_worker", Role::Admin),
    ("debug.failpoint", Role::Admin),
    ("debug.clock_jump", Role::Admin),
];

/// The role each HTTP route needs (`NAME` and `ID` stand for any job name
/// and run id; `HEAD` is as `GET`). A route that calls a method needs that
/// method's role; `GET /healthz` needs no token at all. The router applies
/// it through [`role_for_method`] (and [`Role::Read`] for the page,
/// `/metrics` and `/cluster`); `tests/roles.rs` holds this table to its
/// own copy and calls each row with each role against the real daemon.
pub const ROUTE_ROLES: &[(&str, &str, Role)] = &[
    ("GET", "/", Role::Read),
    ("GET", "/metrics", Role::Read),
    ("GET", "/cluster", Role::Read),
    ("GET", "/status", Role::Read),
    ("GET", "/jobs", Role::Read),
    ("GET", "/jobs/NAME", Role::Read),
    ("GET", "/runs", Role::Read),
    ("GET", "/runs/ID", Role::Read),
    ("GET", "/runs/ID/output", Role::Read),
    ("POST", "/jobs/NAME/run", Role::Operate),
    ("POST", "/jobs/NAME/pause", Role::Operate),
    ("POST", "/jobs/NAME/resume", Role::Operate),
    ("POST", "/runs/ID/cancel", Role::Operate),
    ("PUT", "/jobs/NAME", Role::Admin),
    ("DELETE", "/jobs/NAME", Role::Admin),
    ("POST", "/reload", Role::Admin),
];

/// The role `method` needs: its entry in [`METHOD_ROLES`], or
/// [`Role::Admin`] for a method the table does not name.
pub fn role_for_method(method: &str) -> Role {
    METHOD_ROLES
        .iter()
        .find(|(m, _)| *m == method)
        .map_or(Role::Admin, |&(_, role)| role)
}

/// Whether `method` changes something (its role is above read): such a
/// request is written to the audit log ([`super::audit_line`]).
pub fn changes_state(method: &str) -> bool {
    role_for_method(method) > Role::Read
}

/// A request refused for its client's role: `-32003` (HTTP 403) with
/// [`Denied`]'s `Display` as the message, e.g. `forbidden: jobs.run needs
/// role operate (token "ci" has read)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denied {
    /// The method asked for.
    pub method: String,
    /// The role it needs.
    pub needed: Role,
    /// Who asked, as [`super::Grant`] shows it (`token "ci"`), and the
    /// role they have.
    pub who: String,
    /// The role the client has.
    pub has: Role,
}

impl fmt::Display for Denied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "forbidden: {} needs role {} ({} has {})",
            self.method, self.needed, self.who, self.has
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_named_as_in_the_config() {
        assert!(Role::Read < Role::Operate && Role::Operate < Role::Admin);
        for r in Role::ALL {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("Admin"), None);
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn unknown_methods_need_admin_and_reads_change_nothing() {
        assert_eq!(role_for_method("no.such"), Role::Admin);
        assert_eq!(role_for_method("jobs.run"), Role::Operate);
        assert_eq!(role_for_method("runs.output"), Role::Read);
        assert!(!changes_state("subscribe"));
        assert!(changes_state("jobs.pause"));
        assert!(changes_state("reload"));
    }

    #[test]
    fn each_method_and_route_is_named_once() {
        let mut names: Vec<&str> = METHOD_ROLES.iter().map(|(m, _)| *m).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METHOD_ROLES.len());
        let mut routes: Vec<(&str, &str)> = ROUTE_ROLES.iter().map(|(m, p, _)| (*m, *p)).collect();
        routes.sort_unstable();
        routes.dedup();
        assert_eq!(routes.len(), ROUTE_ROLES.len());
    }

    #[test]
    fn the_message_names_the_role_needed() {
        let d = Denied {
            method: "jobs.run".into(),
            needed: Role::Operate,
            who: "token \"ci\"".into(),
            has: Role::Read,
        };
        assert_eq!(
            d.to_string(),
            "forbidden: jobs.run needs role operate (token \"ci\" has read)"
        );
    }
}
