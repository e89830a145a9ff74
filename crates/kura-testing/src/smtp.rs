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

    async fn try_start() -> Option<MailServer> {
        use tokio::io::AsyncReadExt;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
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

    /// Waits for the `count`th mail and returns the reset token in it.
    pub async fn reset_token(&self, count: usize) -> (String, String) {
        for _ in 0..100 {
            let mails = self.delivered();
            if mails.len() >= count {
                let mail = &mails[count - 1];
                // Undo quoted-printable soft line breaks and escapes around the link.
                let text = mail.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
                let token = text
                    .split("token=")
                    .nth(1)
                    .map(|rest| {
                        rest.chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect()
                    })
                    .expect("the mail carries a reset link");
                return (mail.clone(), token);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no mail number {count} arrived");
    }
}

impl Drop for MailServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
