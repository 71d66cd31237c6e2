//! Checking a command a test ran (a service's CLI, as an operator runs it).

use std::process::Output;

/// Asserts that the command succeeded, showing its standard error when it did not, and
/// returns its standard output.
pub fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "the command failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
