//! `kura-server doctor`: checks an installation the way an auditor would, from the
//! server's own host, with its configuration: who may read the data and the keys, the TLS
//! protocols the listeners speak and how long the certificate has left, that each listener
//! answers where it is configured and the management listener nowhere on the customer's
//! address, that mail can leave, and how old the newest metadata backup is.
//!
//! Each check ends in a [`Finding`]: `ok`, `warn` (works, but an auditor would ask) or
//! `fail` (fix it). It reads and connects; it changes nothing.

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::config::ServerConfig;
use crate::metadata::{scheduled_copies, scheduled_dir};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// A certificate expiring sooner than this is a warning; an expired one a failure.
const CERT_WARN_DAYS: i64 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// One check's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    pub level: Level,
    /// What was checked, e.g. `files`, `tls`, `listeners`.
    pub check: &'static str,
    pub detail: String,
}

fn finding(level: Level, check: &'static str, detail: impl Into<String>) -> Finding {
    Finding {
        level,
        check,
        detail: detail.into(),
    }
}

/// Runs every check against the installation `config` describes.
pub async fn examine(config: &ServerConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    out.extend(file_modes(config));
    out.extend(certificate(config));
    out.extend(listeners(config).await);
    out.push(mail(config));
    out.push(metadata_backup(config));
    out.push(management_networks(config));
    out.push(clock());
    out
}

/// Data and keys readable by their owner only; a configuration holding secrets not
/// readable by everyone.
fn file_modes(config: &ServerConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let data = &config.data_dir;
    let owner = std::fs::metadata(data).map(|m| m.uid()).ok();
    let mut loose = Vec::new();
    let mut checked = 0;
    let mut private = vec![
        data.clone(),
        data.join("tls"),
        data.join("vaults"),
        data.join("objects"),
    ];
    for name in ["service-key", "operator-token", "quickstart.json"] {
        private.push(data.join(name));
    }
    private.extend(config.sqlite_file());
    private.extend(read_dir(&data.join("tls")));
    private.extend(read_dir(&data.join("vaults")));
    for path in [
        &config.tls_key,
        &config.metrics_token_file,
        &config.metadata_backup_passphrase_file,
    ]
    .into_iter()
    .flatten()
    {
        private.push(path.clone());
    }
    for path in &private {
        let Ok(meta) = std::fs::metadata(path) else {
            continue;
        };
        checked += 1;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            loose.push(format!("{} is {mode:o}", path.display()));
        }
        if owner.is_some_and(|uid| uid != meta.uid()) {
            loose.push(format!(
                "{} belongs to another user (uid {})",
                path.display(),
                meta.uid()
            ));
        }
    }
    out.push(if loose.is_empty() {
        finding(
            Level::Ok,
            "files",
            format!("{checked} data, key and secret files and folders are the service user's alone"),
        )
    } else {
        finding(
            Level::Fail,
            "files",
            format!(
                "readable by others: {} — chmod go= them (the service makes them so itself)",
                loose.join("; ")
            ),
        )
    });
    if let Some(file) = &config.config_file {
        let secrets = !config.smtp_url.expose().is_empty()
            || !config.s3_secret_key.expose().is_empty()
            || !config.service_key.expose().is_empty();
        if let Ok(meta) = std::fs::metadata(file) {
            let mode = meta.permissions().mode() & 0o777;
            out.push(if secrets && mode & 0o007 != 0 {
                finding(
                    Level::Fail,
                    "config",
                    format!(
                        "{} holds secrets and is {mode:o}: make it root:kura 0640",
                        file.display()
                    ),
                )
            } else {
                finding(Level::Ok, "config", format!("{} is {mode:o}", file.display()))
            });
        }
    }
    out
}

fn read_dir(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

/// The listeners' certificate: readable, and how long it has left.
fn certificate(config: &ServerConfig) -> Vec<Finding> {
    let path = config
        .tls_cert
        .clone()
        .unwrap_or_else(|| config.data_dir.join("tls").join("server.pem"));
    let pem = match std::fs::read(&path) {
        Ok(pem) => pem,
        Err(e) => {
            return vec![finding(
                Level::Fail,
                "certificate",
                format!("cannot read {}: {e}", path.display()),
            )];
        }
    };
    let not_after = match x509_parser::pem::parse_x509_pem(&pem) {
        Ok((_, pem)) => match pem.parse_x509() {
            Ok(cert) => cert.validity().not_after.timestamp(),
            Err(e) => {
                return vec![finding(
                    Level::Fail,
                    "certificate",
                    format!("{}: {e}", path.display()),
                )];
            }
        },
        Err(e) => {
            return vec![finding(
                Level::Fail,
                "certificate",
                format!("{}: {e}", path.display()),
            )];
        }
    };
    let now = kura_service::Clock::default().now_ms().div_euclid(1000);
    let days = (not_after - now).div_euclid(86_400);
    let until = jiff::Timestamp::from_second(not_after)
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_default();
    let level = if not_after <= now {
        Level::Fail
    } else if days < CERT_WARN_DAYS {
        Level::Warn
    } else {
        Level::Ok
    };
    let what = if level == Level::Fail {
        "expired"
    } else {
        "valid until"
    };
    vec![finding(
        level,
        "certificate",
        format!("{} {what} {until} ({days} days)", path.display()),
    )]
}

/// Each listener answers HTTPS where it is configured, speaking TLS 1.3 and 1.2 only;
/// the console and operator API are absent on the customer listener; the management
/// listener cannot be reached on the customer's address.
async fn listeners(config: &ServerConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    for (name, addr, path) in [
        ("customer", config.customer_listen, "/healthz"),
        ("management", config.management_listen, "/healthz"),
    ] {
        let target = reachable(addr);
        let mut versions = Vec::new();
        let mut problems = Vec::new();
        for (label, version) in [
            ("TLS 1.3", reqwest::tls::Version::TLS_1_3),
            ("TLS 1.2", reqwest::tls::Version::TLS_1_2),
        ] {
            match probe(target, path, Some(version)).await {
                Ok(_) => versions.push(label),
                Err(e) => problems.push(format!("{label}: {e}")),
            }
        }
        out.push(if versions.is_empty() {
            finding(
                Level::Fail,
                "listeners",
                format!(
                    "{name} listener at {target} does not answer: {}",
                    problems.join("; ")
                ),
            )
        } else {
            finding(
                Level::Ok,
                "listeners",
                format!(
                    "{name} listener answers at {target} ({}; older versions are not offered)",
                    versions.join(", ")
                ),
            )
        });
    }
    let customer = reachable(config.customer_listen);
    out.push(match probe(customer, "/api/v1/operator/tenants", None).await {
        Ok(404) => finding(
            Level::Ok,
            "separation",
            "the operator API is absent on the customer listener",
        ),
        Ok(code) => finding(
            Level::Fail,
            "separation",
            format!("the customer listener answers the operator API with {code}"),
        ),
        Err(e) => finding(
            Level::Warn,
            "separation",
            format!("could not ask the customer listener: {e}"),
        ),
    });
    out.push(management_on_customer_address(config));
    out
}

/// Whether the management port answers on any address customers reach the service at.
fn management_on_customer_address(config: &ServerConfig) -> Finding {
    let management = config.management_listen;
    let customer_addresses: Vec<IpAddr> = if config.customer_listen.ip().is_unspecified() {
        host_addresses()
            .into_iter()
            .filter(|ip| !ip.is_loopback())
            .collect()
    } else {
        vec![config.customer_listen.ip()]
    };
    let open: Vec<String> = customer_addresses
        .iter()
        .map(|ip| SocketAddr::new(*ip, management.port()))
        .filter(|addr| TcpStream::connect_timeout(addr, CONNECT_TIMEOUT).is_ok())
        .map(|addr| addr.to_string())
        .collect();
    if !open.is_empty() {
        return finding(
            Level::Fail,
            "separation",
            format!(
                "the management listener answers on the customer's address ({}): bind management_listen to a management network address",
                open.join(", ")
            ),
        );
    }
    if management.ip().is_unspecified() {
        return finding(
            Level::Warn,
            "separation",
            format!(
                "management_listen {management} binds every address; no customer address answers now, but bind it to the management network's"
            ),
        );
    }
    finding(
        Level::Ok,
        "separation",
        format!(
            "the management listener ({management}) does not answer on the customer's addresses ({})",
            customer_addresses
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    )
}

/// The host's own addresses (every interface that is up).
fn host_addresses() -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return out;
    }
    let mut cursor = list;
    while !cursor.is_null() {
        // SAFETY: `cursor` is a node of the list getifaddrs returned, not yet freed.
        let entry = unsafe { &*cursor };
        if !entry.ifa_addr.is_null() {
            // SAFETY: a non-null ifa_addr points at a sockaddr of the family it names.
            let family = i32::from(unsafe { (*entry.ifa_addr).sa_family });
            if family == libc::AF_INET {
                // SAFETY: the family says it is a sockaddr_in.
                let sin = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in) };
                out.push(IpAddr::from(u32::from_be(sin.sin_addr.s_addr).to_be_bytes()));
            } else if family == libc::AF_INET6 {
                // SAFETY: the family says it is a sockaddr_in6.
                let sin6 = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in6) };
                let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                // Link-local addresses need a scope to connect to; customers do not use them.
                if ip.segments()[0] & 0xffc0 != 0xfe80 {
                    out.push(IpAddr::V6(ip));
                }
            }
        }
        cursor = entry.ifa_next;
    }
    // SAFETY: the list getifaddrs allocated, freed once.
    unsafe { libc::freeifaddrs(list) };
    out
}

/// Where to reach a listener from this host: its address, or loopback for a wildcard.
fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::from(([127, 0, 0, 1], addr.port())),
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, addr.port()))
        }
        _ => addr,
    }
}

/// An HTTPS GET of `path` at `addr` (certificate not checked: this is about the
/// protocol, and the certificate is checked on its own), with only `version` offered.
async fn probe(addr: SocketAddr, path: &str, version: Option<reqwest::tls::Version>) -> Result<u16, String> {
    let mut builder = reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .timeout(CONNECT_TIMEOUT);
    if let Some(version) = version {
        builder = builder.tls_version_min(version).tls_version_max(version);
    }
    let client = builder.build().map_err(|e| e.to_string())?;
    let response = client
        .get(format!("https://{addr}{path}"))
        .send()
        .await
        .map_err(|e| error_chain(&e))?;
    Ok(response.status().as_u16())
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A mail server is configured and accepts connections.
fn mail(config: &ServerConfig) -> Finding {
    let url = config.smtp_url.expose();
    if url.is_empty() {
        return finding(
            Level::Warn,
            "mail",
            "no smtp_url: notices, alerts, support replies and password resets are not mailed",
        );
    }
    let Some((host, port)) = smtp_host_port(url) else {
        return finding(
            Level::Fail,
            "mail",
            "smtp_url cannot be read: write smtp://HOST:PORT",
        );
    };
    let reached = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .map(|addrs| {
            addrs
                .into_iter()
                .any(|a| TcpStream::connect_timeout(&a, CONNECT_TIMEOUT).is_ok())
        })
        .unwrap_or(false);
    if reached {
        finding(
            Level::Ok,
            "mail",
            format!("the mail server {host}:{port} accepts connections"),
        )
    } else {
        finding(
            Level::Fail,
            "mail",
            format!("the mail server {host}:{port} does not accept connections: mail waits in the outbox"),
        )
    }
}

/// Host and port of an `smtp://` or `smtps://` URL (credentials and query ignored).
fn smtp_host_port(url: &str) -> Option<(String, u16)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?']).next()?;
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let default = if scheme == "smtps" { 465 } else { 25 };
    let port = |text: Option<&str>| match text {
        Some(p) => p.parse().ok(),
        None => Some(default),
    };
    if let Some(bracketed) = host_port.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']')?;
        return Some((host.to_owned(), port(after.strip_prefix(':'))?));
    }
    match host_port.split_once(':') {
        Some((host, p)) => Some((host.to_owned(), port(Some(p))?)),
        None => Some((host_port.to_owned(), default)),
    }
}

/// The newest scheduled metadata backup, and whether it is recent.
fn metadata_backup(config: &ServerConfig) -> Finding {
    if config.metadata_backup_passphrase_file.is_none() || config.metadata_backup_interval.is_zero() {
        return finding(
            Level::Warn,
            "metadata backup",
            "no scheduled metadata backup: set metadata_backup_passphrase_file (and metadata_backup_dir on another disk)",
        );
    }
    let dir = scheduled_dir(config);
    let newest = scheduled_copies(&dir)
        .ok()
        .and_then(|copies| copies.last().cloned());
    let Some(newest) = newest else {
        return finding(
            Level::Fail,
            "metadata backup",
            format!(
                "no copy in {} yet: run `kura-server jobs run metadata-backup --wait`",
                dir.display()
            ),
        );
    };
    let age = std::fs::metadata(&newest)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .unwrap_or_default();
    let hours = age.as_secs() / 3600;
    let level = if age > config.metadata_backup_interval * 2 {
        Level::Fail
    } else {
        Level::Ok
    };
    finding(
        level,
        "metadata backup",
        format!("newest copy {} is {hours} h old", newest.display()),
    )
}

fn management_networks(config: &ServerConfig) -> Finding {
    if config.operator_networks.is_empty() {
        finding(
            Level::Warn,
            "operator networks",
            "operator_networks is empty: operators may sign in from wherever the management listener is reached",
        )
    } else {
        let networks: Vec<String> = config.operator_networks.iter().map(ToString::to_string).collect();
        finding(
            Level::Ok,
            "operator networks",
            format!("operators only from {}", networks.join(", ")),
        )
    }
}

fn clock() -> Finding {
    match crate::host::clock_synchronized() {
        Some(true) => finding(
            Level::Ok,
            "clock",
            "the kernel reports the clock synchronised (NTP)",
        ),
        Some(false) => finding(
            Level::Fail,
            "clock",
            "the clock is not synchronised: every log time depends on it; run an NTP daemon (chrony, systemd-timesyncd)",
        ),
        None => finding(
            Level::Warn,
            "clock",
            "cannot tell whether the clock is synchronised",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls() {
        assert_eq!(
            smtp_host_port("smtp://127.0.0.1:2525"),
            Some(("127.0.0.1".into(), 2525))
        );
        assert_eq!(
            smtp_host_port("smtp://user:pw@mail.example:587?tls=required"),
            Some(("mail.example".into(), 587))
        );
        assert_eq!(
            smtp_host_port("smtps://mail.example"),
            Some(("mail.example".into(), 465))
        );
        assert_eq!(smtp_host_port("smtp://[::1]:25"), Some(("::1".into(), 25)));
        assert_eq!(smtp_host_port("mail.example"), None);
    }

    #[test]
    fn wildcard_listeners_are_reached_on_loopback() {
        assert_eq!(
            reachable("0.0.0.0:8443".parse().unwrap()),
            "127.0.0.1:8443".parse().unwrap()
        );
        assert_eq!(
            reachable("10.0.0.5:9443".parse().unwrap()),
            "10.0.0.5:9443".parse().unwrap()
        );
    }

    #[test]
    fn the_host_has_addresses() {
        assert!(host_addresses().iter().any(IpAddr::is_loopback));
    }
}
