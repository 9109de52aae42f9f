//! The web console: static files embedded in the binary, served at `/console` with their content types, an ETag and a self-only Content-Security-Policy.
//!
//! The console is plain HTML, CSS and JavaScript modules (`node/console/`) that read the same
//! JSON API as every other client; the node serves them from memory and never fetches anything
//! at run time. Every answer carries [`CSP`]: scripts, styles, images and API calls from this
//! origin only, no inline script or style, no frames, no plug-ins. See docs/OPERATIONS.md
//! §Web console and docs/AUDITING.md §In the browser.

use std::sync::OnceLock;

use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use credence_ledger::hash::Hash;

use super::error::{ApiError, ApiPath};

/// The console's Content-Security-Policy: everything from this origin only, nothing inline.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// One embedded file: its name under `/console/`, content type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $ct:expr) => {
        Asset { name: $name, content_type: $ct, bytes: include_bytes!(concat!("../../console/", $name)) }
    };
}

/// Every file of the console. `index.html` is also served at `/console`.
const ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("console.css", CSS),
    asset!("icon.svg", SVG),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("signin.js", JS),
    asset!("i18n.js", JS),
    asset!("format.js", JS),
    asset!("validate.js", JS),
    asset!("verify.js", JS),
    asset!("chart.js", JS),
    asset!("records.js", JS),
    asset!("pages.js", JS),
];

/// Each asset's strong ETag (the first 16 hex digits of its SHA-256), computed once.
fn etags() -> &'static [String] {
    static ETAGS: OnceLock<Vec<String>> = OnceLock::new();
    ETAGS
        .get_or_init(|| ASSETS.iter().map(|a| format!("\"{}\"", &Hash::digest(&[a.bytes]).to_string()[..16])).collect())
}

/// `GET /console`: the console's page.
#[utoipa::path(
    get,
    path = "/console",
    tag = "console",
    responses((status = 200, description = "The web console (HTML)", body = String, content_type = "text/html"))
)]
pub async fn index(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

/// `GET /console/{asset}`: one of the console's files.
#[utoipa::path(
    get,
    path = "/console/{asset}",
    tag = "console",
    params(("asset" = String, Path, description = "File name, e.g. app.js")),
    responses(
        (status = 200, description = "The file, with its content type", body = String),
        (status = 304, description = "Unchanged (If-None-Match)"),
        (status = 404, description = "No such file", body = super::views::ErrorBody),
    )
)]
pub async fn asset(ApiPath(name): ApiPath<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    match ASSETS.iter().position(|a| a.name == name) {
        Some(i) => Ok(serve(i, &headers)),
        None => {
            let shown: String = name.chars().take(100).collect();
            Err(ApiError::not_found("asset", format!("the console has no file {shown:?}")))
        }
    }
}

fn serve(i: usize, headers: &HeaderMap) -> Response {
    let asset = &ASSETS[i];
    let etag = &etags()[i];
    let fresh = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut response = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { asset.bytes.into_response() };
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    // Revalidate every time: a node upgrade changes the files under the same names.
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(ETAG, v);
    }
    h.insert(HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff"));
    h.insert(HeaderName::from_static("referrer-policy"), HeaderValue::from_static("no-referrer"));
    h.insert(HeaderName::from_static("x-frame-options"), HeaderValue::from_static("DENY"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_the_console_imports_is_embedded() {
        let names: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        for a in ASSETS {
            let text = std::str::from_utf8(a.bytes).expect("assets are UTF-8 text");
            // `from './x.js'` (imports) and `/console/x` (links in the page).
            for (marker, end) in [("from './", '\''), ("\"/console/", '"')] {
                for (at, _) in text.match_indices(marker) {
                    let rest = &text[at + marker.len()..];
                    let name = &rest[..rest.find(end).expect("closed")];
                    assert!(names.contains(&name), "{} refers to {name}, which is not embedded", a.name);
                }
            }
        }
    }

    #[test]
    fn files_carry_their_type_the_policy_and_an_etag() {
        for (i, asset) in ASSETS.iter().enumerate() {
            let r = serve(i, &HeaderMap::new());
            assert_eq!(r.status(), StatusCode::OK);
            let h = r.headers();
            assert_eq!(h[CONTENT_TYPE], asset.content_type);
            assert_eq!(h[CONTENT_SECURITY_POLICY], CSP);
            assert_eq!(h["x-content-type-options"], "nosniff");
            let expected = match asset.name.rsplit_once('.').map(|(_, ext)| ext) {
                Some("html") => HTML,
                Some("css") => CSS,
                Some("js") => JS,
                Some("svg") => SVG,
                other => panic!("{}: no content type for {other:?}", asset.name),
            };
            assert_eq!(asset.content_type, expected, "{}", asset.name);
            let etag = h[ETAG].clone();
            let mut again = HeaderMap::new();
            again.insert(IF_NONE_MATCH, etag);
            assert_eq!(serve(i, &again).status(), StatusCode::NOT_MODIFIED, "{}", asset.name);
        }
        assert!(!CSP.contains("unsafe") && CSP.contains("default-src 'none'"));
    }

    #[test]
    fn the_page_has_no_inline_script_or_style() {
        let html = std::str::from_utf8(ASSETS[0].bytes).expect("utf-8");
        assert!(!html.contains("<style"), "inline style would need 'unsafe-inline'");
        assert!(!html.contains(" style="), "inline style would need 'unsafe-inline'");
        for (at, _) in html.match_indices("<script") {
            let tag = &html[at..at + html[at..].find('>').expect("closed")];
            assert!(tag.contains("src="), "inline script: {tag}");
        }
    }
}
