//! Rebuilds when a database migration is added or changed: the migrations
//! are embedded by `sqlx::migrate!`, which Cargo does not track by itself.

fn main() {
    println!("cargo:rerun-if-changed=migrations/sqlite");
    println!("cargo:rerun-if-changed=migrations/postgres");
}
