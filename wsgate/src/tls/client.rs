//! TLS to servers (`server ... ssl`): placeholder, filled in below.
