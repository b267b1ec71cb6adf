//! `[[tokens]]`: named tokens, each with a role (read, operate, admin).
//! Read from the item the file's reading kept, like `[cluster]`, and added
//! to the set `[daemon]` started ([`LiveSettings::tokens`], whose first
//! entry is `daemon.auth_token` as an admin token named `auth_token`).
//! Live: a reload replaces the set, and the server re-judges open
//! connections against it.
//!
//! Each table: `name` (1..=64 of `[A-Za-z0-9_.-]`, unique, and not
//! `auth_token` while `daemon.auth_token` is set), exactly one of `token`
//! (no whitespace or control characters) and `token_file` (read at load,
//! refused if its group or others may read it, as `auth_token_file`), and
//! `role = "read" | "operate" | "admin"` (required: no token gets a role
//! by default). Two tables with the same secret are refused (a secret
//! must say who is calling), and so is one with the secret of
//! `daemon.auth_token`.
//!
//! [`LiveSettings::tokens`]: super::LiveSettings::tokens

use toml_edit::{Item, TableLike};

use super::daemon::{absolute, read_token_file, TokenRead};
use super::error::Report;
use super::raw::{array_of_tables, place, unknown};
use super::values::is_job_name;
use crate::auth::{AuthToken, NamedToken, Role, Tokens, LEGACY_NAME};

/// The keys of a `[[tokens]]` table.
const KEYS: [&str; 4] = ["name", "token", "token_file", "role"];

/// Both stages for the `tokens` item: each table checked and added to
/// `tokens`.
pub(super) fn check(r: &mut Report<'_>, item: &Item, at: usize, tokens: &mut Tokens) {
    let Some(tables) = array_of_tables(r, item, at, "tokens", "one [[tokens]] table per token")
    else {
        return;
    };
    for (index, (table, table_at)) in tables.into_iter().enumerate() {
        if let Some(token) = one(r, index, table, table_at, tokens) {
            tokens.push(token);
        }
    }
}

/// One `[[tokens]]` table, checked against the tokens before it.
fn one(
    r: &mut Report<'_>,
    index: usize,
    table: &dyn TableLike,
    table_at: usize,
    before: &Tokens,
) -> Option<NamedToken> {
    let key = |field: &str| format!("tokens[{index}].{field}");
    let mut ok = true;
    let mut text = |r: &mut Report<'_>, field: &str| -> Option<(String, usize)> {
        let item = table.get(field)?;
        let at = place(table, field, item, table_at);
        match item.as_str() {
            Some(s) => Some((s.to_string(), at)),
            None => {
                r.error(at, key(field), "expected a string");
                ok = false;
                None
            }
        }
    };
    let name = text(r, "name");
    let token = text(r, "token");
    let token_file = text(r, "token_file");
    let role = text(r, "role");
    for (field, item) in table.iter() {
        if !KEYS.contains(&field) {
            let at = place(table, field, item, table_at);
            r.error(at, key(field), unknown(field, KEYS));
        }
    }
    let name = match name {
        Some((n, at)) if !is_job_name(&n) => {
            let message = "a token's name is 1 to 64 characters of A-Z a-z 0-9 _ . -";
            r.error(at, key("name"), message);
            None
        }
        Some((n, at)) if before.iter().any(|t| *t.name == *n) => {
            let message = if n == LEGACY_NAME {
                format!("\"{n}\" is the name of daemon.auth_token; choose another")
            } else {
                format!("\"{n}\" is the name of an earlier [[tokens]] table; names must be unique")
            };
            r.error(at, key("name"), message);
            None
        }
        Some((n, _)) => Some(n),
        None => {
            if ok {
                r.error(table_at, key("name"), "missing: every token needs a name");
            }
            None
        }
    };
    let role = match role {
        Some((text, at)) => match Role::parse(&text) {
            Some(role) => Some(role),
            None => {
                let message = format!("\"{text}\" is not a role; expected read, operate or admin");
                r.error(at, key("role"), message);
                None
            }
        },
        None => {
            let message = "missing: role = \"read\", \"operate\" or \"admin\"";
            r.error(table_at, key("role"), message);
            None
        }
    };
    let (secret, secret_at, secret_key) = match (token, token_file) {
        (Some(_), Some((_, at))) => {
            let message = "set only one of token and token_file";
            r.error(at, key("token_file"), message);
            return None;
        }
        (Some((t, at)), None) => {
            if t.is_empty() || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
                let message = "must be non-empty, without whitespace or control characters";
                r.error(at, key("token"), message);
                return None;
            }
            (AuthToken::new(t), at, "token")
        }
        (None, Some((path, at))) => {
            let path = absolute(std::path::Path::new(&path));
            match read_token_file(&path) {
                Ok(TokenRead::Fresh(t)) => (t, at, "token_file"),
                Ok(TokenRead::Kept(t, message)) => {
                    r.warn(at, key("token_file"), message);
                    (t, at, "token_file")
                }
                Err(message) => {
                    r.error(at, key("token_file"), message);
                    return None;
                }
            }
        }
        (None, None) => {
            if ok {
                let message = "missing: token = \"...\" or token_file = \"PATH\"";
                r.error(table_at, key("token"), message);
            }
            return None;
        }
    };
    if let Some(same) = before.find_secret(&secret) {
        // Never the secret in a message: the name of the other holder.
        let message = format!(
            "the same secret as the token \"{}\"; each token needs its own secret, so that the \
             audit log can tell who called",
            same.name
        );
        r.error(secret_at, key(secret_key), message);
        return None;
    }
    Some(NamedToken::new(&name?, secret, role?))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{assert_errors, ok};
    use crate::auth::Role;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn tokens_join_the_legacy_token_with_their_names_and_roles() {
        let config = ok("[daemon]\nauth_token = \"root-s\"\n\n\
             [[tokens]]\nname = \"ci\"\ntoken = \"ci-s\"\nrole = \"operate\"\n\n\
             [[tokens]]\nname = \"dash\"\ntoken = \"dash-s\"\nrole = \"read\"\n");
        let got: Vec<(String, Role)> = config
            .daemon
            .live
            .tokens
            .iter()
            .map(|t| (t.name.to_string(), t.role))
            .collect();
        assert_eq!(
            got,
            [
                ("auth_token".to_string(), Role::Admin),
                ("ci".to_string(), Role::Operate),
                ("dash".to_string(), Role::Read)
            ]
        );
        assert!(!format!("{config:?}").contains("ci-s"), "never in Debug");
        let only = ok("[[tokens]]\nname = \"a\"\ntoken = \"a-s\"\nrole = \"admin\"\n");
        assert!(only.daemon.live.tokens.auth_on());
        assert!(!ok("").daemon.live.tokens.auth_on());
    }

    #[test]
    fn names_and_secrets_must_be_unique_and_each_table_complete() {
        assert_errors(
            "[daemon]\nauth_token = \"s\"\n\
             [[tokens]]\nname = \"auth_token\"\ntoken = \"t\"\nrole = \"read\"\n\
             [[tokens]]\nname = \"b\"\ntoken = \"s\"\nrole = \"read\"\n\
             [[tokens]]\nname = \"c\"\ntoken = \"c\"\nrole = \"read\"\n\
             [[tokens]]\nname = \"c\"\ntoken = \"d\"\nrole = \"read\"\n",
            &[
                "conf/t.toml:4: tokens[0].name: \"auth_token\" is the name of daemon.auth_token; choose another",
                "conf/t.toml:9: tokens[1].token: the same secret as the token \"auth_token\"; each token needs its own secret, so that the audit log can tell who called",
                "conf/t.toml:16: tokens[3].name: \"c\" is the name of an earlier [[tokens]] table; names must be unique",
            ],
        );
        assert_errors(
            "[[tokens]]\nname = \"a\"\ntoken = \"x y\"\nrole = \"root\"\nextra = 1\n\
             [[tokens]]\nname = \"b\"\n",
            &[
                "conf/t.toml:3: tokens[0].token: must be non-empty, without whitespace or control characters",
                "conf/t.toml:4: tokens[0].role: \"root\" is not a role; expected read, operate or admin",
                "conf/t.toml:5: tokens[0].extra: unknown key; expected one of: name, token, token_file, role",
                "conf/t.toml:6: tokens[1].role: missing: role = \"read\", \"operate\" or \"admin\"",
                "conf/t.toml:6: tokens[1].token: missing: token = \"...\" or token_file = \"PATH\"",
            ],
        );
    }

    #[test]
    fn a_token_file_must_be_owner_only_and_is_exclusive_with_token() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("ci.token");
        std::fs::write(&file, "ci-from-file\n").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let text = format!(
            "[[tokens]]\nname = \"ci\"\ntoken_file = \"{}\"\nrole = \"read\"\n",
            file.display()
        );
        assert_errors(
            &text,
            &[&format!(
                "conf/t.toml:3: tokens[0].token_file: {} is readable by group or others (mode 0644); run chmod 600 on it",
                file.display()
            )],
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let config = ok(&text);
        let t = config.daemon.live.tokens.iter().next().expect("ci");
        assert!(t.secret.matches(b"ci-from-file"));
        assert_errors(
            &format!("{text}token = \"x\"\n"),
            &["conf/t.toml:3: tokens[0].token_file: set only one of token and token_file"],
        );
    }
}
