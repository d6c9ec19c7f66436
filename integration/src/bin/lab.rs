//! The kernel lab.
fn main() {}
