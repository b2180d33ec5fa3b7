//! wsload: WebSocket load generator for wsgate's tests and benchmark.

fn main() {}
