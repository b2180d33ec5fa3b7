//! TLS termination with rustls: certificates from `bind ... ssl crt`.
