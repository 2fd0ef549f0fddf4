//! Criterion benches of the in-process parts of a `get`.
fn main() {}
