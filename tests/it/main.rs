//! herald's integration tests: one binary, one file per area.

mod helpers;
