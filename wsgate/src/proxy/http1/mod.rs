//! HTTP/1.1 (RFC 9112): message heads and bodies, with strict framing.

pub mod body;
pub mod head;

#[cfg(test)]
mod fuzz;
