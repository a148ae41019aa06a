//! Rebuild when a migration changes: `db::MIGRATIONS` embeds `migrations/` at compile
//! time, and cargo does not otherwise notice edits there (a stale binary would migrate
//! with the old SQL while test templates are named after the new files).
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
