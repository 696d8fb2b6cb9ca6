//! No build step. The file exists so that `[build-dependencies]` in Cargo.toml take part in
//! host-side feature unification (see the comment there).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
}
