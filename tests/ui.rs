//! Compile-time behaviour of `#[idempotent]`: what compiles, and the error each mistake gets.
//!
//! Refresh the expected errors with `TRYBUILD=overwrite cargo test --test ui` and read the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/fail/*.rs");
}
