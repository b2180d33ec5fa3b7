//! `global` keywords about the process itself: `user`/`uid`, `group`/`gid`
//! (the identity wsgate takes once its sockets are bound), `pidfile`,
//! `chroot` (read, not applied: a missing directory is reported as an
//! environment warning, since HAProxy would not start), and
//! how it stops: `grace` and `close-spread-time` (`hard-stop-after` is
//! with the other times, in handlers.rs).
//!
//! Names are resolved while the configuration is read (through the C
//! library, so NSS sources such as LDAP count), so `wsgate -c` reports an
//! unknown user at its line, as `haproxy -c` does.

use std::ffi::CString;
use std::path::PathBuf;
use std::time::Duration;

use super::keywords::NO_CHROOT;
use super::parser::{Cx, GlobalDraft, ProxyDraft};

/// The process settings of `global`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProcessSettings {
    /// `user <name>` or `uid <number>`: switched to after binding.
    pub user: Option<Account>,
    /// `group <name>` or `gid <number>`. As in HAProxy, `user` alone does
    /// not change the group.
    pub group: Option<Account>,
    /// `pidfile <path>` (or `-p <path>` on the command line, which wins).
    pub pidfile: Option<PathBuf>,
    /// `grace <time>`: after a stop signal, how long wsgate goes on serving
    /// as usual (so that load balancers in front notice) before the stop.
    pub grace: Option<Duration>,
    /// `close-spread-time`: how the closes of a stop are spread in time.
    pub close_spread: CloseSpread,
    /// `tune.idle-park`: when idle tunnels leave their tasks.
    pub idle_park: IdlePark,
}

/// `tune.idle-park <time>` (wsgate): how long a tunnel must be silent,
/// with nothing in flight, before it leaves its task and waits in its
/// worker's parked set (proxy/park.rs), where an idle WebSocket costs
/// about half as much memory. `0` keeps every tunnel in its task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdlePark(pub Option<Duration>);

impl IdlePark {
    /// A park and its wake-up cost about a dozen system calls: a tunnel
    /// quiet for two seconds is likely to stay quiet much longer.
    pub const DEFAULT: Duration = Duration::from_secs(2);
}

impl Default for IdlePark {
    fn default() -> IdlePark {
        IdlePark(Some(IdlePark::DEFAULT))
    }
}

/// `tune.idle-park <time>`: a wsgate extension (HAProxy has no parked
/// tunnels), so it warns that HAProxy will not load the file.
pub fn idle_park(g: &mut GlobalDraft, cx: &mut Cx<'_>) {
    let kw = cx.kw;
    cx.warn(
        kw,
        "`tune.idle-park` is a wsgate extension: HAProxy will not load this configuration",
    );
    if let Some(t) = super::handlers::time_arg(cx) {
        g.process.idle_park = IdlePark(t);
    }
}

/// `chroot <dir>`: ignored, with the reason; a missing directory is noted.
pub fn chroot(_g: &mut GlobalDraft, cx: &mut Cx<'_>) {
    let Some(dir) = cx.one_arg("chroot <dir>") else {
        return;
    };
    let kw = cx.kw;
    cx.warn(kw, format!("'chroot' is ignored: {NO_CHROOT}"));
    if !cx.syntax_only && !std::path::Path::new(&dir.text).is_dir() {
        let d = super::diag::Diagnostic::warning(
            cx.loc(dir),
            format!(
                "chroot directory '{}' does not exist here: HAProxy would not start (wsgate does not chroot)",
                dir.text
            ),
        )
        .environment();
        cx.diags.push(d);
    }
}

/// `grace <time>` in a proxy section (HAProxy 1.x kept that one proxy up
/// during the grace): read, then ignored with a pointer to the global form,
/// since wsgate stops all its listeners together.
pub fn grace_proxy(_p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    if super::handlers::time_arg(cx).is_some() {
        let kw = cx.kw;
        cx.warn(
            kw,
            "'grace' in a proxy section is ignored: wsgate stops every listener together",
        )
        .hint = Some("put `grace <time>` in the `global` section to delay the whole stop".into());
    }
}

/// `close-spread-time <time|infinite>`: when a stopping wsgate sends each
/// WebSocket its close frame. Spreading avoids every client reconnecting
/// (to the servers behind the next proxy) in the same instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CloseSpread {
    /// Unset: every WebSocket is closed as soon as the stop begins.
    #[default]
    AtOnce,
    /// Each WebSocket at a uniformly random moment within this window.
    Over(Duration),
    /// `infinite`: wsgate closes none; peers close them, or
    /// `hard-stop-after` ends what remains.
    Never,
}

/// A user or group: the number the kernel uses and the name for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: u32,
    pub name: String,
}

/// `user <name>`
pub fn user(g: &mut GlobalDraft, cx: &mut Cx<'_>) {
    let Some(t) = cx.one_arg("user <user name>") else {
        return;
    };
    match lookup_user(&t.text) {
        Some(id) => set(&mut g.process.user, cx, t, id, "user/uid"),
        None => {
            cx.error(t, format!("unknown user '{}'", t.text)).hint =
                Some("create it (useradd --system ...), or name an existing user".into());
        }
    }
}

/// `group <name>`
pub fn group(g: &mut GlobalDraft, cx: &mut Cx<'_>) {
    let Some(t) = cx.one_arg("group <group name>") else {
        return;
    };
    match lookup_group(&t.text) {
        Some(id) => set(&mut g.process.group, cx, t, id, "group/gid"),
        None => {
            cx.error(t, format!("unknown group '{}'", t.text)).hint =
                Some("create it (groupadd --system ...), or name an existing group".into());
        }
    }
}

/// `uid <number>`
pub fn uid(g: &mut GlobalDraft, cx: &mut Cx<'_>) {
    if let Some((t, id)) = number(cx, "uid <number>") {
        set(&mut g.process.user, cx, t, id, "user/uid");
    }
}

/// `gid <number>`
pub fn gid(g: &mut GlobalDraft, cx: &mut Cx<'_>) {
    if let Some((t, id)) = number(cx, "gid <number>") {
        set(&mut g.process.group, cx, t, id, "group/gid");
    }
}

/// `pidfile <path>`
pub fn pidfile(g: &mut GlobalDraft, cx: &mut Cx<'_>) {
    if let Some(t) = cx.one_arg("pidfile <path>") {
        g.process.pidfile = Some(PathBuf::from(&t.text));
    }
}

/// `grace <time>`
pub fn grace(g: &mut GlobalDraft, cx: &mut Cx<'_>) {
    if let Some(t) = super::handlers::time_arg(cx) {
        g.process.grace = t;
    }
}

/// `close-spread-time <time|infinite>`
pub fn close_spread_time(g: &mut GlobalDraft, cx: &mut Cx<'_>) {
    if cx.args.first().is_some_and(|a| a.text == "infinite") && cx.args.len() == 1 {
        g.process.close_spread = CloseSpread::Never;
        return;
    }
    if let Some(t) = super::handlers::time_arg(cx) {
        g.process.close_spread = t.map_or(CloseSpread::AtOnce, CloseSpread::Over);
    }
}

fn number<'a>(cx: &mut Cx<'a>, usage: &str) -> Option<(&'a super::lexer::Token, u32)> {
    let t = cx.one_arg(usage)?;
    match t.text.parse::<u32>() {
        Ok(n) => Some((t, n)),
        Err(_) => {
            cx.error(t, format!("'{}' is not a number", t.text)).hint =
                Some(format!("usage: {usage}"));
            None
        }
    }
}

/// Records an identity; a second line for the same one is refused, as
/// HAProxy refuses "uid/user already specified".
fn set(slot: &mut Option<Account>, cx: &mut Cx<'_>, t: &super::lexer::Token, id: u32, what: &str) {
    if slot.is_some() {
        cx.error(t, format!("{what} already specified"));
        return;
    }
    *slot = Some(Account {
        id,
        name: t.text.clone(),
    });
}

fn lookup_user(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: zeroed passwd is a valid out-parameter for getpwnam_r.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call; `buf` outlives it.
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some(pwd.pw_uid)
}

fn lookup_group(name: &str) -> Option<u32> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 64 * 1024];
    // SAFETY: zeroed group is a valid out-parameter for getgrnam_r.
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call; `buf` outlives it.
    let rc = unsafe {
        libc::getgrnam_r(
            cname.as_ptr(),
            &mut grp,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then_some(grp.gr_gid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_unknown_names() {
        assert_eq!(lookup_user("root"), Some(0));
        assert_eq!(lookup_group("root"), Some(0));
        assert_eq!(lookup_user("no-such-user-wsgate"), None);
        assert_eq!(lookup_group("no-such-group-wsgate"), None);
    }
}
