//! The Pingora glue.
