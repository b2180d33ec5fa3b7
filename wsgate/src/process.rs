//! The process's own identity and traces: the pid file and the switch to
//! `user`/`group` once every socket is bound and every certificate read.
//!
//! Order, as HAProxy: bind (ports below 1024 need root or
//! CAP_NET_BIND_SERVICE), write the pid file, then drop to the configured
//! group and user. glibc applies setgid/setuid to every thread of the
//! process, so the worker threads started earlier change identity too (the
//! e2e test reads each thread's /proc status to prove it).
//!
//! After the switch, a reload can still bind ports above 1024; a new port
//! below 1024 fails with the reason in the reload's diagnostics. Under
//! systemd, `User=` with `AmbientCapabilities=CAP_NET_BIND_SERVICE` avoids
//! that (contrib/wsgate.service).

use std::path::{Path, PathBuf};

use crate::config::process::{Account, ProcessSettings};

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("cannot write the pid file {path}: {source}")]
    PidFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot switch to {kind} '{name}' ({id}): {source}")]
    Switch {
        kind: &'static str,
        name: String,
        id: u32,
        source: std::io::Error,
    },
    #[error("cannot switch to {kind} '{name}': wsgate runs as uid {euid}, not root")]
    NotRoot {
        kind: &'static str,
        name: String,
        euid: u32,
    },
}

/// Writes the pid file (`pidfile` or `-p`), replacing an old one.
pub fn write_pidfile(path: &Path) -> Result<(), ProcessError> {
    std::fs::write(path, format!("{}\n", std::process::id())).map_err(|source| {
        ProcessError::PidFile {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// Switches to the configured group, then user (supplementary groups
/// cleared first, as HAProxy does). Nothing to do when neither is set or
/// the process already has them.
pub fn drop_privileges(settings: &ProcessSettings) -> Result<(), ProcessError> {
    // SAFETY: geteuid/getegid have no preconditions.
    let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
    let group = settings.group.as_ref().filter(|g| g.id != egid);
    let user = settings.user.as_ref().filter(|u| u.id != euid);
    if euid != 0 {
        if let Some((kind, a)) = group.map(|g| ("group", g)).or(user.map(|u| ("user", u))) {
            return Err(ProcessError::NotRoot {
                kind,
                name: a.name.clone(),
                euid,
            });
        }
        return Ok(());
    }
    if let Some(g) = group {
        // SAFETY: setgroups with a zero-length list clears the
        // supplementary groups; setgid takes a plain id.
        let rc = unsafe {
            if libc::setgroups(0, std::ptr::null()) == 0 {
                libc::setgid(g.id)
            } else {
                -1
            }
        };
        if rc != 0 {
            return Err(switch_error("group", g));
        }
    }
    if let Some(u) = user {
        // SAFETY: setuid takes a plain id; glibc applies it to all threads.
        if unsafe { libc::setuid(u.id) } != 0 {
            return Err(switch_error("user", u));
        }
    }
    Ok(())
}

fn switch_error(kind: &'static str, a: &Account) -> ProcessError {
    ProcessError::Switch {
        kind,
        name: a.name.clone(),
        id: a.id,
        source: std::io::Error::last_os_error(),
    }
}
