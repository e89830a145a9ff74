//! The agent's configuration file: which server this machine is registered with and its
//! credential. Written by `kura register` with mode 0600 (it holds a secret), read by every
//! command that is not given a local vault with `--repo`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use kura_agent::ServerConnection;
use serde::{Deserialize, Serialize};

/// What `kura register` stores.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AgentConfig {
    /// Base URL of the server's customer listener.
    pub server_url: String,
    /// PEM of the CA that signed the server certificate (absent: the system's roots).
    pub ca_cert_pem: Option<String>,
    pub tenant_id: String,
    pub machine_id: String,
    pub machine_name: String,
    /// The agent credential: a bearer token, revocable by the tenant admin.
    pub credential: String,
    /// The secret of this machine's own key slot in an encrypted vault (`kura init
    /// --encrypt`, `kura key add --machine`): it opens the vault without the passphrase,
    /// so the daemon runs unattended. Whoever reads this file can open the vault, as with
    /// a passphrase file; revoking the machine removes the slot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_key: Option<String>,
}

impl AgentConfig {
    /// The default location: `$XDG_CONFIG_HOME/kura/agent.toml` or `~/.config/kura/agent.toml`.
    pub fn default_path() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(base.join("kura").join("agent.toml"))
    }

    /// Reads the file at `path`; `Ok(None)` when there is none.
    pub fn load(path: &Path) -> Result<Option<Self>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).with_context(|| format!("cannot read the agent config {}", path.display()));
            }
        };
        let config = toml::from_str(&text)
            .with_context(|| format!("the agent config {} is not valid", path.display()))?;
        Ok(Some(config))
    }

    /// Writes the file with mode 0600, replacing any previous one atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let text = toml::to_string(self).context("cannot encode the agent config")?;
        let part = path.with_extension(format!("part-{}", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&part)
            .with_context(|| format!("cannot write {}", part.display()))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .with_context(|| format!("cannot write {}", part.display()))?;
        std::fs::rename(&part, path).with_context(|| format!("cannot write {}", path.display()))?;
        Ok(())
    }

    /// How to reach the server as this machine.
    pub fn connection(&self) -> ServerConnection {
        ServerConnection {
            url: self.server_url.clone(),
            ca_cert_pem: self.ca_cert_pem.clone(),
            credential: self.credential.clone(),
        }
    }
}
