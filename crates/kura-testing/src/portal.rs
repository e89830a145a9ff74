//! A browser without JavaScript on the portal: it keeps cookies, follows no redirect by
//! itself (tests look at each `303`), and reads the hidden fields of the forms it got.

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::server::{TestServer, builder_trusting};

/// One browser: its cookies and its last page.
pub struct PortalBrowser {
    http: reqwest::Client,
    base: String,
    cookies: Mutex<BTreeMap<String, String>>,
    /// The language it asks for (`Accept-Language`).
    pub accept_language: String,
    /// An `X-Forwarded-For` to send, playing a client behind a trusted proxy.
    pub forwarded_for: Option<String>,
}

/// A portal answer.
#[derive(Debug, Clone)]
pub struct Page {
    pub status: u16,
    /// `Location` of a redirect.
    pub location: Option<String>,
    pub html: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Page {
    /// The value of the first hidden or text field `name` of the page.
    pub fn field(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.html.find(&marker)? + marker.len();
        let end = self.html[start..].find('"')? + start;
        Some(unescape(&self.html[start..end]))
    }

    /// Whether the page's text contains `text` (after HTML unescaping).
    pub fn says(&self, text: &str) -> bool {
        unescape(&self.html).contains(text)
    }
}

fn unescape(text: &str) -> String {
    text.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

impl PortalBrowser {
    pub fn new(server: &TestServer, accept_language: &str) -> PortalBrowser {
        let http = builder_trusting(server.server.ca_cert().unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        PortalBrowser {
            http,
            base: server.customer.clone(),
            cookies: Mutex::new(BTreeMap::new()),
            accept_language: accept_language.to_owned(),
            forwarded_for: None,
        }
    }

    /// A cookie the browser holds.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    /// Forgets a cookie (e.g. to play a browser whose session ended).
    pub fn forget(&self, name: &str) {
        self.cookies.lock().unwrap().remove(name);
    }

    pub async fn get(&self, path: &str) -> Page {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    /// Posts a form exactly as given (hidden fields included by the caller).
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body: String = form_urlencoded_pairs(fields);
        let request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }

    /// Posts a form and, when it answers `303`, follows it once as a browser does (the
    /// page then shows the form's notice).
    pub async fn submit(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let page = self.post(path, fields).await;
        match (page.status, &page.location) {
            (303, Some(location)) => self.get(location).await,
            _ => page,
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Page {
        let cookie_header = self
            .cookies
            .lock()
            .unwrap()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let mut request = request.header("accept-language", &self.accept_language);
        if let Some(address) = &self.forwarded_for {
            request = request.header("x-forwarded-for", address);
        }
        if !cookie_header.is_empty() {
            request = request.header("cookie", cookie_header);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        for value in headers.get_all("set-cookie") {
            let text = value.to_str().unwrap();
            let pair = text.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let expired = text.contains("Max-Age=0");
            let mut cookies = self.cookies.lock().unwrap();
            if expired || value.is_empty() {
                cookies.remove(name);
            } else {
                cookies.insert(name.to_owned(), value.to_owned());
            }
        }
        let location = headers
            .get("location")
            .map(|value| value.to_str().unwrap().to_owned());
        let html = response.text().await.unwrap();
        Page {
            status,
            location,
            html,
            headers,
        }
    }
}

/// A browser signed in to the portal as `login` (without TOTP), asking for `language`.
pub async fn sign_in(server: &TestServer, language: &str, login: &str, password: &str) -> PortalBrowser {
    let browser = PortalBrowser::new(server, language);
    let page = browser.get("/login").await;
    let token = page.field("form_token").unwrap();
    let page = browser
        .post(
            "/login",
            &[("login", login), ("password", password), ("form_token", &token)],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.html);
    browser
}

fn form_urlencoded_pairs(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
