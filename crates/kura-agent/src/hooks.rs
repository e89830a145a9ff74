//! Backup hooks: shell commands run around a backup (to freeze a file system, take an
//! LVM snapshot or dump a database), whose failure is reported with its output.

use std::process::Command;

use crate::{AgentError, Result};

/// Runs a hook through `sh -c`; a failure names the hook, its status and its stderr.
pub fn run_hook(which: &str, command: &str) -> Result<()> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(command)
        .output()
        .map_err(|e| AgentError::Usage(format!("{which} could not be started: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    Err(AgentError::Hook(format!(
        "{which} `{command}` failed ({}){}",
        out.status,
        if stderr.trim().is_empty() {
            String::new()
        } else {
            format!(": {}", stderr.trim())
        }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_hook_names_itself_and_its_output() {
        let err = run_hook("pre-hook", "echo frozen-fs-busy >&2; exit 3").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("pre-hook") && msg.contains("frozen-fs-busy"),
            "{msg}"
        );
        run_hook("post-hook", "true").unwrap();
    }
}
