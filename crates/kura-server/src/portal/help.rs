//! `/help`: the customer manual in the page's language, rendered from `docs/manual/` when
//! the binary is built (`build.rs`).

use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;
use kura_service::model::Language;

use super::Viewer;
use crate::web::render;

/// The manual as HTML, per language.
fn manual(language: Language) -> &'static str {
    match language {
        Language::Ja => include_str!(concat!(env!("OUT_DIR"), "/manual-ja.html")),
        Language::En => include_str!(concat!(env!("OUT_DIR"), "/manual-en.html")),
    }
}

#[derive(Template)]
#[template(path = "portal/help.html")]
struct HelpPage {
    v: Viewer,
    manual: &'static str,
}

/// `GET /help`.
pub(super) async fn page(v: Viewer) -> Response {
    let manual = manual(v.tr.language);
    render(StatusCode::OK, &HelpPage { v, manual })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The manual is trusted HTML from `docs/`, shown as it is: it must keep to the
    /// portal's Content-Security-Policy (no script, no inline style) and link only
    /// within the page or the portal.
    #[test]
    fn the_manual_keeps_to_the_page_rules() {
        for language in [Language::Ja, Language::En] {
            let html = manual(language);
            assert!(
                html.contains("<h1>") && html.contains("id=\"restore\""),
                "{language}"
            );
            for forbidden in [
                "<script",
                "style=",
                "onclick",
                "onerror",
                "onload",
                "javascript:",
                "href=\"http",
            ] {
                assert!(!html.contains(forbidden), "{language} manual has {forbidden:?}");
            }
        }
    }
}
