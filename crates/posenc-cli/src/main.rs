//! The `posenc` command line.
fn main() {}
