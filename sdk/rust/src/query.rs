//! Query handlers: HTTP requests to the routes an app declares under
//! `query.routes`, answered by the stage that the route names.

use std::fmt;
use std::fmt::Write as _;

use crate::abi::{self, Param, QueryRequest};
use crate::error::Error;
use crate::sys;

/// One HTTP request to a route the app declares under `query.routes` and
/// names this stage for. The host has already routed it to the instance
/// that owns its key's partition.
///
/// It borrows the request the host wrote into guest memory, for the
/// duration of the handler call.
#[derive(Debug, Clone)]
pub struct Query<'a> {
    pub method: &'a str,
    /// The route's path pattern as configured, such as
    /// `/charts/genre/{genre}`: a handler serving several routes tells them
    /// apart by it.
    pub route: &'a str,
    /// The request's path, such as `/charts/genre/rock`.
    pub path: &'a str,
    /// The store partition the request was routed to, or -1 for a route
    /// without a store.
    pub partition: i32,
    pub body: &'a [u8],
    raw_query: &'a str,
    params: Vec<Param<'a>>,
}

impl<'a> Query<'a> {
    pub(crate) fn from_request(r: QueryRequest<'a>) -> Query<'a> {
        Query {
            method: r.method,
            route: r.route,
            path: r.path,
            partition: r.partition,
            body: r.body,
            raw_query: r.raw_query,
            params: r.params,
        }
    }

    /// The value of the path parameter `name` (`genre` for a route
    /// `/charts/genre/{genre}`), or `None` when the route has no such
    /// parameter. A parameter may be empty.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        self.params.iter().find(|p| p.name == name).map(|p| p.value)
    }

    /// The query string as the client sent it, without '?'.
    pub fn raw_query(&self) -> &'a str {
        self.raw_query
    }

    /// The query string's name/value pairs, in order, decoded as Go's
    /// `url.ParseQuery` decodes them (`+` is a space, `%XX` a byte).
    /// Malformed pairs (a bad escape, a `;`, text that is not UTF-8) are
    /// dropped.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for pair in self.raw_query.split('&') {
            if pair.is_empty() || pair.contains(';') {
                continue;
            }
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            if let (Some(n), Some(v)) = (unescape(name), unescape(value)) {
                out.push((n, v));
            }
        }
        out
    }

    /// The first value of the query string's parameter `name`, decoded, or
    /// `None`: `q.query_value("limit")` for `?limit=5`.
    pub fn query_value(&self, name: &str) -> Option<String> {
        self.query_pairs()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }
}

/// Decodes one query string component, or `None` when it is malformed.
fn unescape(s: &str) -> Option<String> {
    if !s.contains(&['%', '+'][..]) {
        return Some(s.to_string());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = b.get(i + 1..i + 3)?;
                // from_str_radix alone would take a sign: "%+1".
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// A query handler's answer. [`Default`] is an empty 200.
///
/// A status outside 200–599 is refused by the host, and the SDK answers 500
/// instead, naming the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The `Content-Type` header; empty sends none.
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Default for Response {
    fn default() -> Response {
        Response {
            status: 200,
            content_type: String::new(),
            body: Vec::new(),
        }
    }
}

impl Response {
    /// An answer with the given status, content type and body.
    pub fn new(status: u16, content_type: impl Into<String>, body: impl Into<Vec<u8>>) -> Response {
        Response {
            status,
            content_type: content_type.into(),
            body: body.into(),
        }
    }

    /// A 200 with a JSON body (`application/json`), such as a value read
    /// from a store.
    pub fn json(body: impl Into<Vec<u8>>) -> Response {
        Response::new(200, "application/json", body)
    }

    /// A 200 with a text body (`text/plain; charset=utf-8`).
    pub fn text(body: impl Into<String>) -> Response {
        Response::new(200, "text/plain; charset=utf-8", body.into())
    }

    /// A JSON error as the host's own API and the SDKs write them:
    /// `{"error":"unknown genre"}` with `status`.
    pub fn error(status: u16, msg: impl fmt::Display) -> Response {
        Response::new(status, "application/json", error_body(&msg.to_string()))
    }

    /// The same answer with another status.
    pub fn with_status(mut self, status: u16) -> Response {
        self.status = status;
        self
    }
}

/// `{"error":msg}`, with msg as a JSON string.
fn error_body(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len() + 12);
    out.push_str("{\"error\":\"");
    for c in msg.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push_str("\"}");
    out
}

/// Answers through the host's `respond` and returns its result.
fn respond(status: i32, content_type: &str, body: &[u8]) -> i32 {
    let (cp, cl) = sys::arg(content_type.as_bytes());
    let (bp, bl) = sys::arg(body);
    unsafe { sys::respond(status, cp, cl, bp, bl) }
}

/// Answers `status` with `{"error": msg}`.
pub(crate) fn respond_error(status: u16, msg: &str) {
    respond(
        i32::from(status),
        "application/json",
        error_body(msg).as_bytes(),
    );
}

/// Runs `handler` on the encoded request and answers: its response, or a
/// JSON error (400 for a request whose text is not UTF-8, 500 for a
/// malformed one, a handler's `Err` or a status the host refuses).
pub(crate) fn run<F, E>(buf: &[u8], handler: &mut F)
where
    F: FnMut(&Query<'_>) -> Result<Response, E>,
    E: fmt::Display,
{
    let req = match abi::decode_query_request(buf) {
        Ok(r) => r,
        Err(e) => {
            let status = if e.reason == abi::NOT_UTF8 { 400 } else { 500 };
            return respond_error(status, &e.to_string());
        }
    };
    let q = Query::from_request(req);
    let resp = match handler(&q) {
        Ok(r) => r,
        Err(e) => return respond_error(500, &e.to_string()),
    };
    let rc = respond(i32::from(resp.status), &resp.content_type, &resp.body);
    if rc < 0 {
        let err = Error::host(abi::FUNC_RESPOND, &format!("status {}", resp.status), rc);
        respond_error(500, &err.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(raw: &'static str) -> Query<'static> {
        Query::from_request(QueryRequest {
            raw_query: raw,
            ..Default::default()
        })
    }

    #[test]
    fn query_strings_decode_like_go() {
        let cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
            ("", vec![]),
            ("a=1&b=2&a=3", vec![("a", "1"), ("b", "2"), ("a", "3")]),
            (
                "q=rock+roll&x=%2F%C3%A9",
                vec![("q", "rock roll"), ("x", "/\u{e9}")],
            ),
            ("flag&=v&&e=", vec![("flag", ""), ("", "v"), ("e", "")]),
            ("bad=%zz&semi=1;2&short=%4&ok=1", vec![("ok", "1")]),
            ("nonutf8=%ff&sign=%+1&k=v=w", vec![("k", "v=w")]),
        ];
        for (raw, want) in cases {
            let got = query(raw).query_pairs();
            let want: Vec<(String, String)> = want
                .into_iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            assert_eq!(got, want, "{:?}", raw);
        }
        let q = query("limit=5&limit=6");
        assert_eq!(q.query_value("limit").as_deref(), Some("5"));
        assert_eq!(q.query_value("none"), None);
        assert_eq!(q.raw_query(), "limit=5&limit=6");
    }

    #[test]
    fn error_bodies_are_json() {
        assert_eq!(error_body("plain"), r#"{"error":"plain"}"#);
        assert_eq!(
            error_body("a \"q\" \\ é\n\u{1}"),
            r#"{"error":"a \"q\" \\ é\n\u0001"}"#
        );
        let r = Response::error(404, format_args!("no chart for {}", "jazz"));
        assert_eq!(
            (r.status, r.content_type.as_str(), r.body.as_slice()),
            (
                404,
                "application/json",
                &br#"{"error":"no chart for jazz"}"#[..]
            )
        );
    }
}
