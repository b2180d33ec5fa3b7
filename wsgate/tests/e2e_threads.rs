//! `nbthread`: the number of worker threads, read from the running process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::Wsgate;

fn workers(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("wsgate-worker"))
        .count()
}

#[test]
fn nbthread_sets_the_worker_count() {
    for n in [1, 3] {
        let port = common::free_port();
        let gate = Wsgate::start(&format!(
            "global\n    nbthread {n}\n\
             defaults\n    mode http\n    timeout connect 1s\n    timeout client 5s\n    timeout server 5s\n\
             frontend fe\n    bind 127.0.0.1:{port}\n    default_backend be\n\
             backend be\n    server s1 127.0.0.1:9\n"
        ));
        assert_eq!(workers(gate.guard.pid()), n, "{}", gate.log());
    }
}
