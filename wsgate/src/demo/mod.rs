//! `wsgate demo`: the tutorial in one command.
//!
//! Starts N demo backends ([`backend`], named s1..sN) in this process on
//! ports the OS picks, makes a self-signed certificate for localhost, writes
//! an ordinary HAProxy configuration that puts them behind one frontend
//! (`ws://` and `wss://`), and runs it through the same path as
//! `wsgate -f`: [`crate::config::load_sources`] → [`crate::proxy::Prepared`]
//! → `start()`. The configuration is printed so the user sees it is plain
//! HAProxy syntax and can reuse it. On SIGINT/SIGTERM the proxy stops
//! accepting while the backends close their WebSockets with 1001, so clients
//! see a clean close rather than a reset.
//!
//! Files (certificate + key PEM, `demo.cfg`) live in a private temporary
//! directory that is removed on exit.

pub mod backend;

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::config::{self, Source};

/// How long open connections get after Ctrl-C.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Interval between the demo backends' pushes (the tutorial's 5 s).
const PUSH_INTERVAL: Duration = Duration::from_secs(5);

/// Options of `wsgate demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Port of the plain (ws://) listener on 127.0.0.1.
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Port of the TLS (wss://) listener on 127.0.0.1.
    #[arg(long, default_value_t = 8443)]
    pub tls_port: u16,
    /// Number of demo backends (s1, s2, ...).
    #[arg(long, default_value_t = 3)]
    pub backends: u16,
}

/// Runs the demo until SIGINT/SIGTERM.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    if args.backends == 0 {
        anyhow::bail!("--backends must be at least 1");
    }
    // Before anything else, so a Ctrl-C during startup still cleans up.
    let stop = stop_signals().context("cannot install SIGINT/SIGTERM handlers")?;
    let dir = TempDir::create().context("cannot create the demo's temporary directory")?;

    let mut backends = Vec::with_capacity(usize::from(args.backends));
    for i in 1..=args.backends {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .context("cannot bind a demo backend on 127.0.0.1")?;
        let name = format!("s{i}");
        let opts = backend::Options {
            name: Some(name.clone()),
            push_interval: PUSH_INTERVAL,
        };
        backends.push((name, backend::spawn(listener, opts)?));
    }
    let servers: Vec<(String, SocketAddr)> = backends
        .iter()
        .map(|(name, b)| (name.clone(), b.addr()))
        .collect();

    let cert = SelfSigned::generate()?;
    let pem_path = dir.path().join("demo.pem");
    write_private(&pem_path, cert.pem.as_bytes())
        .with_context(|| format!("cannot write {}", pem_path.display()))?;
    let cfg_path = dir.path().join("demo.cfg");
    let text = demo_config(args.port, args.tls_port, &pem_path, &servers);
    std::fs::write(&cfg_path, &text)
        .with_context(|| format!("cannot write {}", cfg_path.display()))?;

    let loaded = config::load_sources(&[Source {
        name: cfg_path.display().to_string(),
        text: text.clone(),
    }]);
    for d in &loaded.diagnostics {
        eprintln!("{d}");
    }
    let Some(config) = loaded.config else {
        stop_backends(backends).await;
        anyhow::bail!("the generated demo configuration did not load (see above)");
    };
    let prepared = match crate::proxy::Prepared::new(config) {
        Ok(p) => p,
        Err(errors) => {
            for d in &errors {
                eprintln!("{d}");
            }
            stop_backends(backends).await;
            anyhow::bail!("the generated demo configuration was refused (see above)");
        }
    };
    let proxy = match prepared.start().await {
        Ok(p) => p,
        Err(e) => {
            stop_backends(backends).await;
            return Err(anyhow::Error::new(e).context(format!(
                "cannot start the demo proxy (is port {} or {} in use? try --port 0 --tls-port 0)",
                args.port, args.tls_port
            )));
        }
    };

    let addrs = proxy.local_addrs();
    print!(
        "{}",
        banner(&servers, &cfg_path, &text, &pem_path, &cert, &addrs)
    );

    stop.await;
    eprintln!("wsgate demo: stopping (backends close their WebSockets with 1001)");
    // Concurrently: the proxy stops accepting and waits for its connections,
    // which end because the backends close them.
    tokio::join!(proxy.shutdown(SHUTDOWN_GRACE), stop_backends(backends));
    drop(dir);
    Ok(())
}

/// Registers SIGINT and SIGTERM handlers *now* and returns a future that
/// resolves on the first of them. Unlike calling
/// [`crate::proxy::wait_for_stop_signal`] later, a signal that arrives while
/// we are still starting is neither fatal (default action) nor missed.
pub(crate) fn stop_signals() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    })
}

async fn stop_backends(backends: Vec<(String, backend::Running)>) {
    futures_util::future::join_all(backends.into_iter().map(|(_, b)| b.stop())).await;
}

/// The generated configuration: plain HAProxy syntax.
pub fn demo_config(
    port: u16,
    tls_port: u16,
    pem: &Path,
    servers: &[(String, SocketAddr)],
) -> String {
    let mut text = format!(
        "\
# Generated by `wsgate demo`: plain HAProxy syntax, which `wsgate -f`
# and `haproxy -f` both read.
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    # A WebSocket is a tunnel after the 101: this replaces client/server.
    timeout tunnel 1h

frontend demo
    bind 127.0.0.1:{port}
    bind 127.0.0.1:{tls_port} ssl crt {crt}
    default_backend demo_servers

backend demo_servers
    balance roundrobin
",
        crt = quote_word(&pem.display().to_string()),
    );
    for (name, addr) in servers {
        let _ = writeln!(text, "    server {name} {addr}");
    }
    text
}

/// Quotes a configuration word when it holds characters the HAProxy lexer
/// treats specially.
fn quote_word(word: &str) -> String {
    let special = |c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '\\' | '#' | '$');
    if !word.contains(special) {
        return word.to_owned();
    }
    let mut out = String::with_capacity(word.len() + 2);
    out.push('"');
    for c in word.chars() {
        if matches!(c, '"' | '\\' | '$') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

fn banner(
    servers: &[(String, SocketAddr)],
    cfg_path: &Path,
    cfg_text: &str,
    pem_path: &Path,
    cert: &SelfSigned,
    addrs: &[SocketAddr],
) -> String {
    let mut out = String::new();
    let list: Vec<String> = servers.iter().map(|(n, a)| format!("{n} on {a}")).collect();
    let _ = writeln!(
        out,
        "wsgate demo: {} demo backends ({})",
        servers.len(),
        list.join(", ")
    );
    let _ = writeln!(out, "configuration {}:", cfg_path.display());
    for line in cfg_text.lines() {
        let _ = writeln!(out, "  | {line}");
    }
    let _ = writeln!(
        out,
        "certificate {} (self-signed for localhost, 127.0.0.1, ::1)",
        pem_path.display()
    );
    let _ = writeln!(out, "  SHA-256 fingerprint {}", cert.fingerprint);
    // Frontend then bind order: the plain bind, then the TLS one.
    let mut binds = addrs.iter();
    if let Some(plain) = binds.next() {
        let _ = writeln!(out, "open   http://{plain}/    (WebSocket ws://{plain}/ws)");
    }
    if let Some(tls) = binds.next() {
        let _ = writeln!(
            out,
            "open   https://{tls}/   (WebSocket wss://{tls}/ws; accept the self-signed certificate)"
        );
    }
    let _ = writeln!(
        out,
        "hint: round robin gives each new connection the next server, and a WebSocket stays on its server; reload the page to see \"Server\" change. Ctrl-C stops."
    );
    out
}

/// A self-signed certificate and its key, as one PEM (HAProxy's `crt` file).
struct SelfSigned {
    pem: String,
    /// SHA-256 of the DER certificate, colon-separated upper-case hex.
    fingerprint: String,
}

impl SelfSigned {
    fn generate() -> anyhow::Result<SelfSigned> {
        let names = vec!["localhost".to_owned(), "127.0.0.1".into(), "::1".into()];
        let mut params = rcgen::CertificateParams::new(names)
            .context("cannot build the demo certificate's parameters")?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "wsgate demo (localhost)");
        let key = rcgen::KeyPair::generate().context("cannot generate a key pair")?;
        let cert = params
            .self_signed(&key)
            .context("cannot self-sign the demo certificate")?;
        Ok(SelfSigned {
            pem: format!("{}{}", cert.pem(), key.serialize_pem()),
            fingerprint: fingerprint(cert.der()),
        })
    }
}

/// SHA-256 fingerprint as browsers and `openssl x509 -fingerprint -sha256`
/// show it: `AB:CD:...`.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// Writes a file readable only by its owner (it holds a private key).
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// A private directory under the system temp dir, removed on drop.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn create() -> std::io::Result<TempDir> {
        use std::os::unix::fs::DirBuilderExt as _;
        let base = std::env::temp_dir();
        remove_stale(&base);
        let pid = std::process::id();
        for attempt in 0..100u32 {
            let path = base.join(format!("wsgate-demo-{pid}-{attempt}"));
            match std::fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(TempDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e),
            }
        }
        Err(std::io::Error::other("no free temporary directory name"))
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

/// Removes directories left by demos that were killed (SIGKILL skips our
/// cleanup): `wsgate-demo-PID-N` whose PID no longer runs. Best effort.
fn remove_stale(base: &Path) {
    // Without /proc we cannot tell a live demo from a dead one.
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix("wsgate-demo-")) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        let running = Path::new("/proc").join(pid.to_string()).exists();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        // Another user's directory fails to delete in a sticky /tmp: fine.
        if !running && is_dir {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lists_every_server_and_both_binds() {
        let servers = vec![
            ("s1".to_owned(), SocketAddr::from(([127, 0, 0, 1], 4001))),
            ("s2".to_owned(), SocketAddr::from(([127, 0, 0, 1], 4002))),
        ];
        let text = demo_config(8080, 8443, Path::new("/tmp/x/demo.pem"), &servers);
        assert!(text.contains("    bind 127.0.0.1:8080\n"));
        assert!(text.contains("    bind 127.0.0.1:8443 ssl crt /tmp/x/demo.pem\n"));
        assert!(text.contains("    timeout tunnel 1h\n"));
        assert!(text.contains("    balance roundrobin\n"));
        assert!(text.contains("    server s1 127.0.0.1:4001\n"));
        assert!(text.ends_with("    server s2 127.0.0.1:4002\n"));
    }

    #[test]
    fn paths_with_spaces_are_quoted() {
        assert_eq!(quote_word("/tmp/a b/x.pem"), "\"/tmp/a b/x.pem\"");
        assert_eq!(quote_word("/tmp/plain.pem"), "/tmp/plain.pem");
    }

    #[test]
    fn fingerprint_is_colon_separated_sha256() {
        // SHA-256 of the empty string.
        let fp = fingerprint(b"");
        assert!(fp.starts_with("E3:B0:C4:42:98:FC:1C:14:"));
        assert_eq!(fp.len(), 32 * 3 - 1);
    }

    #[test]
    fn certificate_pem_holds_cert_then_key() {
        let cert = SelfSigned::generate().unwrap();
        let begin_cert = cert.pem.find("-----BEGIN CERTIFICATE-----").unwrap();
        let begin_key = cert.pem.find("PRIVATE KEY-----").unwrap();
        assert!(begin_cert < begin_key);
        assert_eq!(cert.fingerprint.split(':').count(), 32);
    }

    #[test]
    fn the_proxy_loads_the_generated_certificate() {
        let cert = SelfSigned::generate().unwrap();
        let dir = TempDir::create().unwrap();
        let path = dir.path().join("demo.pem");
        write_private(&path, cert.pem.as_bytes()).unwrap();
        let ssl = crate::config::model::BindSsl::with_crt(vec![path]);
        assert!(crate::tls::server_config(&ssl).is_ok());
    }

    #[test]
    fn temp_dir_is_private_and_removed_on_drop() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = TempDir::create().unwrap();
        let path = dir.path().to_owned();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(dir);
        assert!(!path.exists());
    }
}
