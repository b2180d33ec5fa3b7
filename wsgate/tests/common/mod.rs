//! Shared harness for the end-to-end tests: they start the real `wsgate`
//! binary and real peers on ports picked at run time, and poll conditions
//! with deadlines instead of sleeping.
//!
//! Every child process is owned by a guard that kills it (by PID) on drop,
//! and every temporary file lives in a [`TempDir`] removed on drop.
//!
//! Not every test file uses every helper, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod diag;
pub mod http;
pub mod metrics;
pub mod raw_ws;
pub mod ws;

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a process gets to start listening. Debug builds on a noisy
/// two-core machine can be slow; a healthy start takes well under a second.
pub const START_DEADLINE: Duration = Duration::from_secs(30);

/// The `wsgate` binary built for these tests.
pub fn wsgate_bin() -> &'static str {
    env!("CARGO_BIN_EXE_wsgate")
}

/// The proxy binary that [`Wsgate`] and [`run_wsgate`] start: `wsgate`,
/// unless `WSGATE_TEST_PROXY` names another executable taking the same
/// `-f FILE` arguments (e.g. a wrapper running `haproxy -db "$@"`, to see
/// which expectations HAProxy itself meets).
pub fn proxy_bin() -> std::ffi::OsString {
    std::env::var_os("WSGATE_TEST_PROXY").unwrap_or_else(|| wsgate_bin().into())
}

/// True when running in CI (`CI` set): missing peers are failures there,
/// never skips.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Call when a test peer is missing. In CI this panics (the peer should
/// have been installed by `.ci/run`); elsewhere it prints why the test is
/// skipped and returns, and the caller returns early.
pub fn skip_unless_ci(reason: &str) {
    if in_ci() {
        panic!("{reason}; CI is set, so this is a failure, not a skip (.ci/run installs it)");
    }
    eprintln!("SKIPPED: {reason} (install it, or run `bash .ci/run`)");
}

/// Polls `f` until it returns `Some` or the deadline passes.
pub fn poll_until<T>(
    deadline: Duration,
    what: &str,
    mut f: impl FnMut() -> Option<T>,
) -> Result<T, String> {
    let end = Instant::now() + deadline;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() >= end {
            return Err(format!("timed out after {deadline:?} waiting for {what}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

// ---------------------------------------------------------------- ports

static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

/// A loopback port that was free a moment ago and that this test process
/// has not handed out before.
pub fn free_port() -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        let mut guard = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
        if guard.get_or_insert_with(HashSet::new).insert(port) {
            return port;
        }
    }
}

/// True when something accepts TCP connections on `addr`.
pub fn accepts(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

/// Waits until every address accepts connections, or `child` exits (then
/// the error names the log file contents).
fn wait_ready(child: &mut Child, addrs: &[SocketAddr], log: &Path, what: &str) {
    let res = poll_until(
        START_DEADLINE,
        &format!("{what} to listen on {addrs:?}"),
        || {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(Err(status));
            }
            addrs.iter().all(|a| accepts(*a)).then_some(Ok(()))
        },
    );
    match res {
        Ok(Ok(())) => {}
        Ok(Err(status)) => panic!(
            "{what} exited early ({status}); its output:\n{}",
            read_lossy(log)
        ),
        Err(e) => panic!("{e}; its output so far:\n{}", read_lossy(log)),
    }
}

pub fn read_lossy(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_else(|e| format!("<cannot read {}: {e}>", path.display()))
}

// ---------------------------------------------------------------- temp dirs

/// A directory under the system temp dir, removed on drop.
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "wsgate-test-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path).expect("create temp dir");
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `contents` to `name` inside the directory; returns the path.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path.join(name);
        fs::write(&p, contents).expect("write temp file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------- processes

/// A child process killed (by PID) and reaped on drop.
pub struct ChildGuard {
    pub child: Child,
    pub log: PathBuf,
}

impl ChildGuard {
    /// Spawns `cmd` with stdin closed and stdout+stderr appended to `log`.
    pub fn spawn(mut cmd: Command, log: PathBuf) -> ChildGuard {
        let out = File::create(&log).expect("create log file");
        let err = out.try_clone().expect("clone log file");
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        ChildGuard { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn output(&self) -> String {
        read_lossy(&self.log)
    }

    /// Sends a signal to the child (by PID).
    pub fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits pid_t");
        // SAFETY: kill(2) on the PID of a child we spawned and have not reaped.
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
    }

    /// Waits for the child to exit, up to `deadline`.
    pub fn wait_exit(&mut self, deadline: Duration) -> Result<ExitStatus, String> {
        let child = &mut self.child;
        poll_until(deadline, "the process to exit", || {
            child.try_wait().ok().flatten()
        })
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Runs `wsgate` with `args` to completion (with a deadline) and returns
/// its exit status and combined output.
pub fn run_wsgate(args: &[&std::ffi::OsStr], deadline: Duration) -> (ExitStatus, String) {
    let dir = TempDir::new("run");
    let mut cmd = Command::new(proxy_bin());
    cmd.args(args);
    let mut guard = ChildGuard::spawn(cmd, dir.path().join("output.log"));
    let status = guard
        .wait_exit(deadline)
        .unwrap_or_else(|e| panic!("wsgate {args:?}: {e}; output:\n{}", guard.output()));
    (status, guard.output())
}

// ---------------------------------------------------------------- wsgate

/// A running `wsgate -f <config>`.
pub struct Wsgate {
    pub guard: ChildGuard,
    pub dir: TempDir,
    pub config: PathBuf,
}

impl Wsgate {
    /// Writes `config` into a fresh temp dir, starts `wsgate -f` on it and
    /// waits until every `bind` address in it accepts connections.
    pub fn start(config: &str) -> Wsgate {
        Wsgate::start_in(TempDir::new("wsgate"), config)
    }

    /// Like [`Wsgate::start`], in a directory the caller prepared (e.g.
    /// with certificates in it).
    pub fn start_in(dir: TempDir, config: &str) -> Wsgate {
        let addrs = bind_addrs(config);
        assert!(!addrs.is_empty(), "no `bind 127.0.0.1:PORT` in:\n{config}");
        let path = dir.write("wsgate.cfg", config);
        let mut cmd = Command::new(proxy_bin());
        cmd.arg("-f").arg(&path).current_dir(dir.path());
        let mut guard = ChildGuard::spawn(cmd, dir.path().join("wsgate.log"));
        wait_ready(&mut guard.child, &addrs, &guard.log, "wsgate");
        Wsgate {
            guard,
            dir,
            config: path,
        }
    }

    /// Everything wsgate logged so far (for failure messages).
    pub fn log(&self) -> String {
        self.guard.output()
    }

    /// Waits (15 s at most) for the process to end after a stop signal,
    /// and checks that it exited with status 0.
    pub fn exits_cleanly(&mut self) {
        let status = self
            .guard
            .wait_exit(Duration::from_secs(15))
            .unwrap_or_else(|e| panic!("after the stop signal: {e}\n{}", self.log()));
        assert_eq!(status.code(), Some(0), "exit status\n{}", self.log());
    }
}

/// The `127.0.0.1:PORT` address of every `bind` line of a configuration.
pub fn bind_addrs(config: &str) -> Vec<SocketAddr> {
    config
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("bind"))
                .then(|| words.next())
                .flatten()
        })
        .filter_map(|a| {
            let port = a.rsplit(':').next()?.parse::<u16>().ok()?;
            Some(SocketAddr::from(([127, 0, 0, 1], port)))
        })
        .collect()
}

// ---------------------------------------------------------------- demo backend

/// A running `wsgate demo-backend --listen 127.0.0.1:PORT --name NAME`.
pub struct DemoBackend {
    pub guard: ChildGuard,
    pub addr: SocketAddr,
    pub name: String,
    _dir: TempDir,
}

impl DemoBackend {
    pub fn start(name: &str, push_interval: &str) -> DemoBackend {
        let dir = TempDir::new("backend");
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let mut cmd = Command::new(wsgate_bin());
        cmd.arg("demo-backend")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--name")
            .arg(name)
            .arg("--push-interval")
            .arg(push_interval);
        let mut guard = ChildGuard::spawn(cmd, dir.path().join("backend.log"));
        wait_ready(
            &mut guard.child,
            &[addr],
            &guard.log,
            &format!("demo-backend {name}"),
        );
        DemoBackend {
            guard,
            addr,
            name: name.to_string(),
            _dir: dir,
        }
    }
}

// ---------------------------------------------------------------- certificates

/// A test CA and a server certificate for `localhost` and `127.0.0.1`
/// signed by it, written as one PEM (chain + key) for `bind ... ssl crt`.
pub struct TestCert {
    /// Server certificate, then the CA, then the private key.
    pub pem_path: PathBuf,
    /// The CA certificate alone (PEM), for clients that trust a file.
    pub ca_path: PathBuf,
    /// The CA certificate (DER), for rustls root stores.
    pub ca_der: rustls_pki_types::CertificateDer<'static>,
}

impl TestCert {
    pub fn generate(dir: &Path, name: &str) -> TestCert {
        use rcgen::{
            BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair,
            KeyUsagePurpose,
        };
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "wsgate test CA");
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().expect("CA key");
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).expect("CA cert");

        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &ca).expect("server cert");

        let pem = format!("{}{}{}", cert.pem(), ca.pem(), key.serialize_pem());
        let pem_path = dir.join(name);
        fs::write(&pem_path, pem).expect("write PEM");
        let ca_path = dir.join(format!("{name}.ca.pem"));
        fs::write(&ca_path, ca.pem()).expect("write CA PEM");
        TestCert {
            pem_path,
            ca_path,
            ca_der: ca.der().clone(),
        }
    }
}

// ---------------------------------------------------------------- external tools

/// True when `python3 -c 'import websockets.sync.client'` works
/// (websockets >= 11, the sync client the test script uses).
pub fn python_websockets_available() -> bool {
    Command::new("python3")
        .args(["-c", "import websockets.sync.client"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Path to a test script under `tests/py/`.
pub fn py_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("py")
        .join(name)
}

/// The Chromium binary, if installed.
pub fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
}

/// Runs a command with a deadline; returns its status, stdout and stderr.
pub fn run_with_deadline(
    mut cmd: Command,
    deadline: Duration,
) -> io::Result<(ExitStatus, String, String)> {
    let dir = TempDir::new("cmd");
    let out_path = dir.path().join("stdout");
    let err_path = dir.path().join("stderr");
    cmd.stdin(Stdio::null())
        .stdout(File::create(&out_path)?)
        .stderr(File::create(&err_path)?);
    let child = cmd.spawn()?;
    let mut guard = ChildGuard {
        child,
        log: err_path.clone(),
    };
    let status = guard.wait_exit(deadline).map_err(|e| {
        io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "{cmd:?}: {e}\nstdout:\n{}\nstderr:\n{}",
                read_lossy(&out_path),
                read_lossy(&err_path)
            ),
        )
    })?;
    Ok((status, read_lossy(&out_path), read_lossy(&err_path)))
}

// ---------------------------------------------------------------- haproxy

/// Runs `haproxy -c -f <path>` (Debian's HAProxy, installed by `.ci/run`):
/// `Some(Ok(()))` when it accepts the file, `Some(Err(stderr))` when it
/// refuses it, `None` when HAProxy is not installed outside CI (a missing
/// HAProxy under `CI` panics, as every peer does).
pub fn haproxy_check(path: &Path) -> Option<Result<(), String>> {
    let bin = ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(bin) = bin else {
        assert!(!in_ci(), "haproxy is not installed");
        eprintln!("SKIPPED (haproxy -c part): haproxy is not installed");
        return None;
    };
    let out = Command::new(bin)
        .arg("-c")
        .arg("-f")
        .arg(path)
        .current_dir(path.parent().unwrap_or(Path::new(".")))
        .output()
        .expect("run haproxy -c");
    Some(if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    })
}

// ---------------------------------------------------------------- runtime API

/// One runtime API command over a unix `stats socket`; its whole answer
/// (the socket is closed after one command, as HAProxy's is).
pub fn cli(sock: &Path, command: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::os::unix::net::UnixStream::connect(sock).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(format!("{command}\n").as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}
