//! Backends and servers at run time: state and counters.
