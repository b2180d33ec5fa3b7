//! systemd integration without libsystemd: `Type=notify` readiness and
//! reload notifications, and socket activation (`LISTEN_FDS`).
//!
//! Both protocols are small and stable (sd_notify(3), sd_listen_fds(3)), so
//! they are spoken here directly rather than through a C library or a crate
//! wrapping one: a datagram to `$NOTIFY_SOCKET`, and file descriptors
//! numbered from 3 when `$LISTEN_PID` is this process.
//!
//! Reloads follow `Type=notify-reload` (systemd 253): `RELOADING=1` with
//! `MONOTONIC_USEC=` before the new configuration is read, `READY=1` once it
//! is in force or refused, so `systemctl reload` waits for the outcome.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::sync::{Mutex, OnceLock};

/// Where service-manager notifications go, when wsgate runs under one.
pub struct Notifier {
    socket: UnixDatagram,
    target: std::os::unix::net::SocketAddr,
}

impl Notifier {
    /// The notifier for `$NOTIFY_SOCKET` (a path, or `@name` for the
    /// abstract namespace); `None` when unset or unusable.
    pub fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let target = notify_address(path.as_encoded_bytes())?;
        let socket = UnixDatagram::unbound().ok()?;
        Some(Notifier { socket, target })
    }

    /// Sends one notification (newline-separated `KEY=value` lines). A
    /// failure is logged, never fatal: the proxy works without a manager.
    pub fn send(&self, state: &str) {
        if let Err(e) = self.socket.send_to_addr(state.as_bytes(), &self.target) {
            tracing::warn!("cannot notify the service manager ({state:?}): {e}");
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    /// `RELOADING=1` with the CLOCK_MONOTONIC time systemd asks for.
    pub fn reloading(&self) {
        self.send(&format!(
            "RELOADING=1\nMONOTONIC_USEC={}\nSTATUS=reloading",
            monotonic_usec()
        ));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping: WebSockets get close 1001");
    }
}

fn notify_address(raw: &[u8]) -> Option<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    match raw {
        [] => None,
        [b'@', name @ ..] => std::os::unix::net::SocketAddr::from_abstract_name(name).ok(),
        path => {
            use std::os::unix::ffi::OsStrExt;
            std::os::unix::net::SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(path)).ok()
        }
    }
}

/// CLOCK_MONOTONIC in microseconds, the clock systemd compares against.
fn monotonic_usec() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000 + (ts.tv_nsec as u64) / 1_000
}

/// First file descriptor passed by socket activation (SD_LISTEN_FDS_START).
const LISTEN_FDS_START: i32 = 3;

/// Listening TCP sockets passed by the service manager, by local address,
/// not yet claimed by a `bind`.
fn inherited() -> &'static Mutex<HashMap<SocketAddr, TcpListener>> {
    static SOCKETS: OnceLock<Mutex<HashMap<SocketAddr, TcpListener>>> = OnceLock::new();
    SOCKETS.get_or_init(|| Mutex::new(take_listen_fds()))
}

/// Reads `$LISTEN_PID`/`$LISTEN_FDS` once. Descriptors that are not
/// listening TCP sockets are closed and logged; the variables are removed
/// so that nothing started later takes them for its own.
fn take_listen_fds() -> HashMap<SocketAddr, TcpListener> {
    let mut out = HashMap::new();
    let for_us = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.parse::<i32>().ok())
        .unwrap_or(0);
    if !for_us || count <= 0 {
        return out;
    }
    for key in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(key);
    }
    for fd in LISTEN_FDS_START..LISTEN_FDS_START + count {
        // SAFETY: systemd passed these descriptors to this process (checked
        // through LISTEN_PID); nothing else in the process owns them.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let socket = socket2::Socket::from(owned);
        let listening = socket.is_listener().unwrap_or(false)
            && socket.r#type().ok() == Some(socket2::Type::STREAM);
        let addr = socket.local_addr().ok().and_then(|a| a.as_socket());
        match (listening, addr) {
            (true, Some(addr)) => {
                if socket.set_nonblocking(true).is_ok() {
                    tracing::info!("socket activation: listening socket {addr} (fd {fd})");
                    out.insert(addr, socket.into());
                }
            }
            _ => tracing::warn!("socket activation: fd {fd} is not a listening TCP socket; closed"),
        }
    }
    out
}

/// The socket passed by the service manager for `addr`, if there is one;
/// each is handed out once (a reload keeps the listener that took it).
pub fn take_listener(addr: SocketAddr) -> Option<TcpListener> {
    let mut sockets = inherited().lock().unwrap_or_else(|p| p.into_inner());
    sockets.remove(&addr)
}

/// Takes the sockets passed by the service manager. Called by `main` before
/// any other thread starts, since it edits the environment.
pub fn adopt_listen_fds() -> usize {
    let sockets = inherited().lock().unwrap_or_else(|p| p.into_inner());
    sockets.len()
}

/// Listening sockets passed by the service manager that no `bind` claimed.
pub fn unclaimed() -> Vec<SocketAddr> {
    let sockets = inherited().lock().unwrap_or_else(|p| p.into_inner());
    sockets.keys().copied().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_socket_forms() {
        use std::os::linux::net::SocketAddrExt;
        assert!(notify_address(b"").is_none());
        let abs = notify_address(b"@wsgate/notify").unwrap();
        assert_eq!(abs.as_abstract_name(), Some(&b"wsgate/notify"[..]));
        let path = notify_address(b"/run/systemd/notify").unwrap();
        assert_eq!(
            path.as_pathname(),
            Some(std::path::Path::new("/run/systemd/notify"))
        );
    }

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = monotonic_usec();
        let b = monotonic_usec();
        assert!(a > 0 && b >= a);
    }
}
