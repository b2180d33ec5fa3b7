//! The proxy's Prometheus metrics, as a test reads them.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::ws::WS_DEADLINE;
use super::Wsgate;

/// The `wsgate_*` metric lines, by their full name with labels.
pub fn metrics(port: u16) -> HashMap<String, u64> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let response = super::http::exchange(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    response
        .body_str()
        .lines()
        .filter(|l| l.starts_with("wsgate_"))
        .filter_map(|l| {
            let (name, v) = l.rsplit_once(' ')?;
            Some((name.to_owned(), v.parse().ok()?))
        })
        .collect()
}

/// Polls the metrics until `name` reaches `want` (counters are flushed
/// when a tunnel ends, which is just after the peers saw the close).
pub async fn metric_reaches(
    port: u16,
    name: &str,
    want: u64,
    gate: &Wsgate,
) -> HashMap<String, u64> {
    let deadline = std::time::Instant::now() + WS_DEADLINE;
    loop {
        let m = tokio::task::spawn_blocking(move || metrics(port))
            .await
            .unwrap();
        if m.get(name) == Some(&want) {
            return m;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name} never reached {want}: {:?}\n{}",
            m.get(name),
            gate.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Prometheus text parsed by Python's `prometheus_client` (a parser that
/// shares no code with wsgate), as `series{labels sorted} -> value`; `None`
/// when it is not installed outside CI (in CI that is a failure).
pub fn prometheus_client_parse(text: &str) -> Option<HashMap<String, f64>> {
    let available = Command::new("python3")
        .args(["-c", "import prometheus_client.parser"])
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        super::skip_unless_ci("python3 prometheus_client is not installed");
        return None;
    }
    let mut child = Command::new("python3")
        .arg(super::py_script("prom_parse.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write the metrics");
    let out = child.wait_with_output().expect("python3 output");
    assert!(
        out.status.success(),
        "prometheus_client refused the metrics: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                Some((series.to_string(), value.parse().ok()?))
            })
            .collect(),
    )
}
