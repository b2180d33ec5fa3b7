//! `userlist` sections (`user`, `group`) and the `http_auth(<userlist>)` /
//! `http_auth_group(<userlist>)` ACL fetches that read them.
//!
//! Stage: the parser hands each line of a `userlist` section to [`line`];
//! `check` calls [`resolve`] (group memberships from both sides, unknown
//! names reported), then [`bind_acls`] on every proxy's ACLs, so that an
//! ACL term holds the userlist it reads. The run-time side
//! (`proxy::auth`) decodes `Authorization: Basic` and verifies passwords.
//!
//! HAProxy 2.6 semantics: `user <name> [password <hash> | insecure-password
//! <pw>] [groups <g>[,<g>...]]`, `group <name> [users <u>[,<u>...]]`; a
//! membership may be declared on either line, before or after the other
//! is declared. HAProxy hands `password` to the C library's `crypt(3)`,
//! which accepts whatever schemes the system has; wsgate implements the
//! common ones (SHA-512 `$6$`, SHA-256 `$5$`, MD5 `$1$`, bcrypt `$2a$`,
//! `$2b$`, `$2y$`) and refuses any other at its line rather than lock
//! everyone out at run time.

use std::collections::HashMap;
use std::sync::Arc;

use super::diag::Diagnostic;
use super::lexer::{Line, Token};
use super::model::{Acl, AclFetch, Location};
use super::parser::ProxyDecl;

/// One `userlist` section, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Userlist {
    pub name: String,
    pub users: Vec<User>,
    /// Declared group names.
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    /// `None`: the line gave no password; the user never authenticates.
    pub password: Option<Password>,
    /// The groups the user belongs to (from both `user ... groups` and
    /// `group ... users`).
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Password {
    /// `insecure-password <pw>`: compared as it is.
    Insecure(String),
    /// `password <hash>`: a crypt(3) hash in one of [`SCHEMES`].
    Hash(String),
}

/// The crypt(3) prefixes wsgate verifies.
const SCHEMES: [&str; 6] = ["$6$", "$5$", "$1$", "$2a$", "$2b$", "$2y$"];

/// `http_auth(<userlist>)` / `http_auth_group(<userlist>)`: the name as
/// written, and the list once [`bind_acls`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserlistRef {
    pub name: String,
    pub list: Option<Arc<Userlist>>,
}

impl UserlistRef {
    pub fn new(name: String) -> Self {
        UserlistRef { name, list: None }
    }
}

/// Names given on a line (`groups a,b`, `users a,b`), where they were
/// written.
type Refs = Vec<(String, Location)>;

/// A `userlist` section being read.
#[derive(Debug, Clone)]
pub struct Draft {
    pub name: String,
    pub location: Location,
    /// Each user, the groups its line names, the line.
    users: Vec<(User, Refs, Location)>,
    /// Each group, the users its line names, the line.
    groups: Vec<(String, Refs, Location)>,
}

impl Draft {
    pub fn new(name: String, location: Location) -> Self {
        Draft {
            name,
            location,
            users: Vec::new(),
            groups: Vec::new(),
        }
    }
}

fn loc(file: &Arc<str>, t: &Token) -> Location {
    Location {
        file: file.clone(),
        line: t.line,
        col: t.col,
    }
}

/// `a,b,c` (HAProxy's separator), each name with the token's location.
fn names(file: &Arc<str>, t: &Token) -> Refs {
    t.text
        .split(',')
        .filter(|n| !n.is_empty())
        .map(|n| (n.to_owned(), loc(file, t)))
        .collect()
}

/// One line inside a `userlist` section.
pub fn line(draft: &mut Draft, file: &Arc<str>, line: &Line, diags: &mut Vec<Diagnostic>) {
    let words = &line.words;
    let Some(kw) = words.first() else { return };
    let result = match kw.text.as_str() {
        "user" => user(draft, file, words, diags),
        "group" => group(draft, file, words),
        other => Err(Diagnostic::error(
            loc(file, kw),
            format!("'{other}' is not supported in a userlist section"),
        )
        .with_hint("a userlist has `user <name> password <hash>|insecure-password <pw> [groups <g>,...]` and `group <name> [users <u>,...]` lines")),
    };
    if let Err(d) = result {
        diags.push(d);
    }
}

/// `user <name> [password <hash> | insecure-password <pw>] [groups <g>,...]`.
fn user(
    draft: &mut Draft,
    file: &Arc<str>,
    words: &[Token],
    diags: &mut Vec<Diagnostic>,
) -> Result<(), Diagnostic> {
    let kw = &words[0];
    let Some(name) = words.get(1) else {
        return Err(
            Diagnostic::error(loc(file, kw), "'user' expects <username> as argument").with_hint(
                "usage: user <name> password <hash>|insecure-password <pw> [groups <g>,...]",
            ),
        );
    };
    if let Some((_, _, at)) = draft.users.iter().find(|(u, _, _)| u.name == name.text) {
        return Err(Diagnostic::error(
            loc(file, name),
            format!(
                "user '{}' already exists in userlist '{}' (line {})",
                name.text, draft.name, at.line
            ),
        ));
    }
    let mut password = None;
    let mut groups = Vec::new();
    let mut i = 2;
    while let Some(t) = words.get(i) {
        let Some(value) = words.get(i + 1) else {
            return Err(Diagnostic::error(
                loc(file, t),
                format!("'{}' expects a value", t.text),
            ));
        };
        match t.text.as_str() {
            "password" => password = Some(Password::Hash(hash(file, name, value)?)),
            "insecure-password" => password = Some(Password::Insecure(value.text.clone())),
            "groups" => groups = names(file, value),
            other => {
                return Err(Diagnostic::error(
                    loc(file, t),
                    format!("'user' does not take '{other}'"),
                )
                .with_hint(
                    "it takes `password <hash>`, `insecure-password <pw>` and `groups <g>,...`",
                ))
            }
        }
        i += 2;
    }
    if password.is_none() {
        diags.push(Diagnostic::warning(
            loc(file, name),
            format!(
                "user '{}' has no password: it can never authenticate",
                name.text
            ),
        ));
    }
    draft.users.push((
        User {
            name: name.text.clone(),
            password,
            groups: Vec::new(),
        },
        groups,
        loc(file, kw),
    ));
    Ok(())
}

/// A `password` value: one of [`SCHEMES`], well formed.
fn hash(file: &Arc<str>, user: &Token, value: &Token) -> Result<String, Diagnostic> {
    let h = &value.text;
    if !SCHEMES.iter().any(|s| h.starts_with(s)) {
        let scheme = match h.strip_prefix('$').and_then(|r| r.split_once('$')) {
            Some((id, _)) => format!("'${id}$'"),
            None => "DES (or no crypt scheme)".to_owned(),
        };
        return Err(Diagnostic::error(
            loc(file, value),
            format!(
                "the password hash of user '{}' uses {scheme}, which wsgate does not verify",
                user.text
            ),
        )
        .with_hint(
            "use SHA-512 (`openssl passwd -6`), SHA-256 (`-5`), MD5 (`-1`) or bcrypt ($2b$/$2y$)",
        ));
    }
    // Hashes are printable ASCII; pwhash's bcrypt decoder underflows on a
    // control character (found by the config fuzz target), so those are
    // refused before it sees them.
    let printable = h.bytes().all(|b| b.is_ascii_graphic());
    if !printable || pwhash::unix::crypt("", h).is_err() {
        return Err(Diagnostic::error(
            loc(file, value),
            format!("the password hash of user '{}' is malformed", user.text),
        )
        .with_hint("make one with e.g. `openssl passwd -6`"));
    }
    Ok(h.clone())
}

/// `group <name> [users <u>,...]`.
fn group(draft: &mut Draft, file: &Arc<str>, words: &[Token]) -> Result<(), Diagnostic> {
    let kw = &words[0];
    let Some(name) = words.get(1) else {
        return Err(
            Diagnostic::error(loc(file, kw), "'group' expects <groupname> as argument")
                .with_hint("usage: group <name> [users <u>,...]"),
        );
    };
    if let Some((_, _, at)) = draft.groups.iter().find(|(g, _, _)| *g == name.text) {
        return Err(Diagnostic::error(
            loc(file, name),
            format!(
                "group '{}' already exists in userlist '{}' (line {})",
                name.text, draft.name, at.line
            ),
        ));
    }
    let members = match (words.get(2), words.get(3)) {
        (None, _) => Vec::new(),
        (Some(t), Some(v)) if t.text == "users" && words.len() == 4 => names(file, v),
        (Some(t), _) => {
            return Err(Diagnostic::error(
                loc(file, t),
                format!("unexpected '{}' in 'group'", t.text),
            )
            .with_hint("usage: group <name> [users <u>,...]"))
        }
    };
    draft
        .groups
        .push((name.text.clone(), members, loc(file, kw)));
    Ok(())
}

/// The sections, resolved: memberships from both sides, unknown users and
/// groups reported (HAProxy refuses them too), duplicate names refused.
pub fn resolve(drafts: &[Draft], diags: &mut Vec<Diagnostic>) -> HashMap<String, Arc<Userlist>> {
    let mut out: HashMap<String, Arc<Userlist>> = HashMap::new();
    let mut first: HashMap<&str, &Location> = HashMap::new();
    for d in drafts {
        if let Some(prev) = first.get(d.name.as_str()) {
            diags.push(Diagnostic::error(
                d.location.clone(),
                format!("userlist '{}' already exists (line {})", d.name, prev.line),
            ));
            continue;
        }
        first.insert(&d.name, &d.location);
        let groups: Vec<String> = d.groups.iter().map(|(g, _, _)| g.clone()).collect();
        let mut users: Vec<User> = d.users.iter().map(|(u, _, _)| u.clone()).collect();
        for (k, (u, wanted, _)) in d.users.iter().enumerate() {
            for (g, at) in wanted {
                if !groups.contains(g) {
                    diags.push(
                        Diagnostic::error(
                            at.clone(),
                            format!(
                                "unable to find group '{g}' in userlist '{}' (user '{}')",
                                d.name, u.name
                            ),
                        )
                        .with_hint(format!("declare it with `group {g}`")),
                    );
                } else if !users[k].groups.contains(g) {
                    users[k].groups.push(g.clone());
                }
            }
        }
        for (g, members, _) in &d.groups {
            for (m, at) in members {
                match users.iter_mut().find(|u| u.name == *m) {
                    Some(u) if !u.groups.contains(g) => u.groups.push(g.clone()),
                    Some(_) => {}
                    None => diags.push(Diagnostic::error(
                        at.clone(),
                        format!(
                            "unable to find user '{m}' in userlist '{}' (group '{g}')",
                            d.name
                        ),
                    )),
                }
            }
        }
        out.insert(
            d.name.clone(),
            Arc::new(Userlist {
                name: d.name.clone(),
                users,
                groups,
            }),
        );
    }
    out
}

/// Points every `http_auth`/`http_auth_group` term of `acls` (proxy `p`'s)
/// at its userlist; an unknown userlist, or a group the list does not
/// declare, is an error at the ACL's line (once: a proxy's named ACLs are
/// bound in each list that holds them).
pub(super) fn bind_acls(
    acls: &mut [Acl],
    lists: &HashMap<String, Arc<Userlist>>,
    p: &ProxyDecl,
    diags: &mut Vec<Diagnostic>,
) {
    for acl in acls.iter_mut() {
        let at = p
            .draft
            .acls
            .iter()
            .find(|(name, _, _)| *name == acl.name)
            .map_or(&p.location, |(_, _, loc)| loc);
        for term in &mut acl.terms {
            let (r, groups) = match &mut term.fetch {
                AclFetch::HttpAuth(r) => (r, false),
                AclFetch::HttpAuthGroup(r) => (r, true),
                _ => continue,
            };
            let Some(list) = lists.get(&r.name) else {
                let known = lists.keys().map(String::as_str);
                let mut e = Diagnostic::error(
                    at.clone(),
                    format!("ACL '{}': unable to find userlist '{}'", acl.name, r.name),
                );
                e = match super::keywords::closest(&r.name, known) {
                    Some(s) => e.with_hint(format!("did you mean '{s}'?")),
                    None => e.with_hint(format!(
                        "declare it: `userlist {}` with `user` lines",
                        r.name
                    )),
                };
                if !diags.contains(&e) {
                    diags.push(e);
                }
                continue;
            };
            if groups {
                for g in term.values.iter().filter(|g| !list.groups.contains(g)) {
                    let e = Diagnostic::error(
                        at.clone(),
                        format!(
                            "ACL '{}': no group '{g}' in userlist '{}'",
                            acl.name, list.name
                        ),
                    );
                    if !diags.contains(&e) {
                        diags.push(e);
                    }
                }
            }
            r.list = Some(list.clone());
        }
    }
}
