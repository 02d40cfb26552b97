//! Integration tests against the built binary.
