//! What the portal (and later the operator console) share as HTML front ends: the
//! languages ([`i18n`]), the files compiled into the binary ([`assets`]), rendering an
//! askama template into a response, error pages, and the cookies a browser keeps
//! besides the session: the CSRF token of the session (read back into every form),
//! before sign-in a double-submit token for the anonymous forms, and the notice a form
//! that succeeded leaves for the page it redirects to ([`see_other_with_notice`]).

use askama::Template;
use axum::http::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use kura_service::model::Language;
use kura_service::secrets::random_hex;

pub mod assets;
pub mod event_log;
pub mod i18n;

use i18n::Tr;

/// The cookie holding the CSRF token of a portal session, so each page can put it in its
/// forms (the service keeps only its hash).
pub const CSRF_COOKIE: &str = "kura_csrf";
/// The double-submit token of the forms shown before sign-in.
pub const FORM_COOKIE: &str = "kura_form";
/// The language chosen before sign-in.
pub const LANGUAGE_COOKIE: &str = "kura_lang";
/// What a form that succeeded says, shown once by the page it redirects to.
pub const NOTICE_COOKIE: &str = "kura_notice";
/// How long a notice waits for its page.
const NOTICE_SECS: i64 = 60;

/// A cookie's value, if the request carries it.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, value)| *key == name && !value.is_empty())
        .map(|(_, value)| value.to_owned())
}

/// A `Set-Cookie` value: always Secure and SameSite=Strict; `http_only` unless scripts
/// must read it (none must). `max_age` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, max_age_secs: i64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("kura_invalid=; Max-Age=0"))
}

/// The language of a request nobody is signed in to: the cookie of the language switch,
/// else `Accept-Language`, else Japanese (the service's home).
pub fn anonymous_language(headers: &HeaderMap) -> Language {
    cookie(headers, LANGUAGE_COOKIE)
        .and_then(|value| Language::parse(&value))
        .or_else(|| {
            headers
                .get(axum::http::header::ACCEPT_LANGUAGE)
                .and_then(|value| value.to_str().ok())
                .and_then(i18n::from_accept_language)
        })
        .unwrap_or(Language::Ja)
}

/// The double-submit token for an anonymous form: the one the browser has, or a new one
/// (then `fresh` is true and the response must set it).
pub struct FormToken {
    pub value: String,
    fresh: bool,
}

impl FormToken {
    pub fn of(headers: &HeaderMap) -> FormToken {
        match cookie(headers, FORM_COOKIE) {
            Some(value) => FormToken { value, fresh: false },
            None => FormToken {
                value: random_hex(16),
                fresh: true,
            },
        }
    }

    /// Whether a submitted form carries the browser's own token: a page of another site
    /// can make the browser post, but cannot read the cookie to fill the field.
    pub fn matches(headers: &HeaderMap, submitted: &str) -> bool {
        cookie(headers, FORM_COOKIE).is_some_and(|value| {
            !submitted.is_empty()
                && aws_lc_rs::constant_time::verify_slices_are_equal(value.as_bytes(), submitted.as_bytes())
                    .is_ok()
        })
    }

    /// Adds the cookie to a response when the token is new.
    pub fn attach(&self, mut response: Response) -> Response {
        if self.fresh {
            // A day: long enough for a form left open, short enough to rotate.
            response
                .headers_mut()
                .append(SET_COOKIE, set_cookie(FORM_COOKIE, &self.value, 86_400));
        }
        response
    }
}

/// Renders a template as a page with `status`.
pub fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => (
            status,
            [(CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"))],
            html,
        )
            .into_response(),
        Err(err) => {
            tracing::error!(error = %err, "page template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                )],
                "internal server error; the operator can find details in the log",
            )
                .into_response()
        }
    }
}

/// `303 See Other` to `location`: the answer to every successful form, so reloading the
/// page does not submit it again.
pub fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// The answer to a form that succeeded and has nothing to show only once: `303` to its
/// page, which then says `text` (a page that must show a secret once — a generated
/// password, a token — is rendered as the form's answer instead, and never cached).
pub fn see_other_with_notice(location: &str, text: &str) -> Response {
    let mut response = see_other(location);
    let value: String = form_urlencoded::byte_serialize(text.as_bytes()).collect();
    response
        .headers_mut()
        .append(SET_COOKIE, set_cookie(NOTICE_COOKIE, &value, NOTICE_SECS));
    response
}

/// The notice a request carries, decoded.
pub fn notice(headers: &HeaderMap) -> Option<String> {
    let value = cookie(headers, NOTICE_COOKIE)?;
    form_urlencoded::parse(value.as_bytes())
        .next()
        .map(|(text, _)| text.into_owned())
        .filter(|text| !text.is_empty())
}

/// Deletes a notice once a page has shown it (any page that is not itself a redirect).
pub async fn notice_shown(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let had_notice = cookie(request.headers(), NOTICE_COOKIE).is_some();
    let mut response = next.run(request).await;
    let is_page = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"text/html"));
    if had_notice && is_page && !response.status().is_redirection() {
        response
            .headers_mut()
            .append(SET_COOKIE, set_cookie(NOTICE_COOKIE, "", 0));
    }
    response
}

/// Whether `next` is a path of this site (so a sign-in link cannot send the browser
/// elsewhere afterwards).
pub fn local_path(next: &str) -> bool {
    next.starts_with('/') && !next.starts_with("//") && !next.contains('\\') && !next.contains("/\\")
}

/// A page that explains a refusal or failure.
#[derive(Template)]
#[template(path = "portal/error.html")]
pub struct ErrorPage {
    pub tr: Tr,
    pub status: u16,
    pub title: String,
    pub message: String,
    /// Where to go from here.
    pub back: &'static str,
}

impl ErrorPage {
    pub fn response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        render(status, &self)
    }
}

/// The QR code of an `otpauth://` URI as an SVG element for the page (no script, no
/// style attribute, so the CSP lets it be).
pub fn qr_svg(uri: &str) -> String {
    match qrcode::QrCode::new(uri.as_bytes()) {
        Ok(code) => {
            let svg = code
                .render::<qrcode::render::svg::Color>()
                .min_dimensions(200, 200)
                .build();
            // The page embeds the element; drop the XML declaration.
            svg.find("<svg")
                .map_or(svg.clone(), |start| svg[start..].to_owned())
        }
        Err(err) => {
            tracing::error!(error = %err, "cannot draw a QR code");
            String::new()
        }
    }
}

/// `303` to `location` setting a session's cookie and the cookie of its CSRF token (the
/// portal's or the console's names), both for `max_age_secs`; empty values and 0 clear
/// them (signing out).
pub fn with_session_cookies(
    location: &str,
    (session_name, session): (&str, &str),
    (csrf_name, csrf): (&str, &str),
    max_age_secs: i64,
) -> Response {
    let mut response = see_other(location);
    let headers = response.headers_mut();
    headers.append(SET_COOKIE, set_cookie(session_name, session, max_age_secs));
    headers.append(SET_COOKIE, set_cookie(csrf_name, csrf, max_age_secs));
    response
}

/// One entry of a front end's navigation.
pub struct NavItem {
    pub href: &'static str,
    pub label: String,
    pub current: bool,
}

/// The entries of `pages` (path, message key, permission) that `allows` lets through, in
/// the page's words, the one `path` is on (or under) marked current.
pub fn navigation(
    pages: &[(&'static str, &str, kura_service::authz::Permission)],
    tr: &Tr,
    path: &str,
    allows: impl Fn(kura_service::authz::Permission) -> bool,
) -> Vec<NavItem> {
    pages
        .iter()
        .filter(|(_, _, permission)| allows(*permission))
        .map(|(href, key, _)| NavItem {
            href,
            label: tr.t(key),
            current: path == *href || (*href != "/" && path.starts_with(&format!("{href}/"))),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert!(local_path("/machines"));
        assert!(local_path("/snapshots?machine=a"));
        assert!(!local_path("//evil.example/"));
        assert!(!local_path("https://evil.example/"));
        assert!(!local_path("/\\evil.example"));
        assert!(!local_path("machines"));
    }

    #[test]
    fn no_template_has_inline_script_or_style() {
        // The Content-Security-Policy allows scripts and styles from our own files only;
        // an inline one would silently not run.
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/templates/portal");
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            for forbidden in [
                "<script>",
                "<style",
                " style=\"",
                " onclick=",
                " onchange=",
                " onsubmit=",
                "hx-on",
            ] {
                assert!(
                    !text.contains(forbidden),
                    "{} contains {forbidden:?}, which the CSP blocks",
                    path.display()
                );
            }
        }
    }
}
