//! A real SMTP server on loopback (aiosmtpd, from PyPI) that writes every message it
//! takes into a Maildir the test reads.

use std::time::Duration;

/// A real SMTP server on loopback (aiosmtpd) delivering into a Maildir.
pub struct MailServer {
    child: std::process::Child,
    pub port: u16,
    maildir: tempfile::TempDir,
}

impl MailServer {
    /// Starts aiosmtpd on a free port. The port is found by binding and releasing it, so
    /// another test may take it first: then aiosmtpd exits, or the port answers without
    /// an SMTP greeting, and another port is tried.
    pub async fn start() -> MailServer {
        for _ in 0..5 {
            if let Some(server) = Self::try_start().await {
                return server;
            }
        }
        panic!("aiosmtpd did not start on any of 5 ports");
    }

    /// Starts aiosmtpd on `port` (one a test had before, say): the way a mail server
    /// that was down comes back.
    pub async fn start_on(port: u16) -> MailServer {
        for _ in 0..50 {
            if let Some(server) = Self::try_start_on(port).await {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("aiosmtpd did not start on port {port}");
    }

    async fn try_start() -> Option<MailServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Self::try_start_on(port).await
    }

    async fn try_start_on(port: u16) -> Option<MailServer> {
        use tokio::io::AsyncReadExt;
        let maildir = tempfile::tempdir().unwrap();
        // Owned by the struct from the start, so `Drop` stops it on every path.
        let mut server = MailServer {
            child: std::process::Command::new("python3")
                .args([
                    "-m",
                    "aiosmtpd",
                    "-n",
                    "-l",
                    &format!("127.0.0.1:{port}"),
                    "-c",
                    "aiosmtpd.handlers.Mailbox",
                ])
                // aiosmtpd creates the Maildir (new/, cur/, tmp/) only where nothing exists yet.
                .arg(maildir.path().join("box"))
                .stderr(std::process::Stdio::null())
                .spawn()
                .expect("python3 with aiosmtpd (pip install aiosmtpd) runs the test's mail server"),
            port,
            maildir,
        };
        for _ in 0..100 {
            if server.child.try_wait().unwrap().is_some() {
                return None;
            }
            if let Ok(mut stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                let mut greeting = [0u8; 4];
                let read =
                    tokio::time::timeout(Duration::from_secs(5), stream.read_exact(&mut greeting)).await;
                return matches!(read, Ok(Ok(_)) if &greeting[..3] == b"220").then_some(server);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        None
    }

    pub fn delivered(&self) -> Vec<String> {
        let new = self.maildir.path().join("box").join("new");
        let mut mails: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(new)
            .map(|dir| {
                dir.map(|entry| {
                    let entry = entry.unwrap();
                    (
                        entry.metadata().unwrap().modified().unwrap(),
                        std::fs::read_to_string(entry.path()).unwrap(),
                    )
                })
                .collect()
            })
            .unwrap_or_default();
        mails.sort();
        mails.into_iter().map(|(_, mail)| mail).collect()
    }

    /// Waits for the `count`th mail; returns it (raw, with its headers) and the reset
    /// token its text carries.
    pub async fn reset_token(&self, count: usize) -> (String, String) {
        let text = self.wait_for(count).await[count - 1].text.clone();
        let token = text
            .split("token=")
            .nth(1)
            .map(|rest| {
                rest.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect()
            })
            .expect("the mail carries a reset link");
        (self.delivered()[count - 1].clone(), token)
    }
}

/// A delivered message, decoded.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl MailServer {
    /// Every message so far, oldest first, with its headers and parts decoded.
    pub fn messages(&self) -> Vec<Delivered> {
        self.delivered()
            .iter()
            .map(|raw| {
                let mail = mailparse::parse_mail(raw.as_bytes()).expect("a well-formed message");
                let header = |name: &str| {
                    mail.headers
                        .iter()
                        .find(|h| h.get_key_ref().eq_ignore_ascii_case(name))
                        .map(|h| h.get_value())
                        .unwrap_or_default()
                };
                let part = |mime: &str| {
                    std::iter::once(&mail)
                        .chain(mail.subparts.iter())
                        .find(|p| p.ctype.mimetype == mime)
                        .map(|p| p.get_body().expect("a decodable part"))
                        .unwrap_or_default()
                };
                Delivered {
                    to: header("To"),
                    subject: header("Subject"),
                    text: part("text/plain"),
                    html: part("text/html"),
                }
            })
            .collect()
    }

    /// Waits (up to 10 s) until `count` messages have arrived; returns them all.
    pub async fn wait_for(&self, count: usize) -> Vec<Delivered> {
        for _ in 0..100 {
            let messages = self.messages();
            if messages.len() >= count {
                return messages;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{count} messages did not arrive; got {:?}", self.messages());
    }
}

impl Drop for MailServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
