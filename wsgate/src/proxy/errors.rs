//! The error responses the proxy itself sends, in HAProxy's format
//! (`HTTP/1.1 503 Service Unavailable` with a small HTML body and
//! `connection: close`), so clients and monitors that parse HAProxy's
//! answers keep working.

use std::borrow::Cow;

use super::after::After;
use super::http1::head::RequestHead;
use crate::config::model::ErrorFiles;

/// The error pages of an exchange: `errorfile` pages of the backend (when
/// the error is tied to one) win over the frontend's, which win over the
/// built-in ones. Once the request is known ([`Pages::with`]), pages go
/// through the `http-after-response` rules.
#[derive(Clone, Copy)]
pub struct Pages<'a> {
    pub frontend: &'a ErrorFiles,
    pub backend: Option<&'a ErrorFiles>,
    pub after: After<'a>,
}

impl<'a> Pages<'a> {
    /// The same pages for the answer to `request`.
    pub fn with<'b>(&self, request: &'b RequestHead) -> Pages<'b>
    where
        'a: 'b,
    {
        Pages {
            after: self.after.with(request),
            ..*self
        }
    }

    /// The response for `status`; with an extra header line, always the
    /// built-in page (an errorfile is sent as it is, before the
    /// `http-after-response` rules).
    pub fn response(&self, status: u16, header: Option<&str>) -> Cow<'a, [u8]> {
        let custom = self
            .backend
            .and_then(|b| b.get(status))
            .or_else(|| self.frontend.get(status))
            .filter(|_| header.is_none());
        let page = match custom {
            Some(page) => Cow::Borrowed(&page[..]),
            None => Cow::Owned(response_with(status, header)),
        };
        self.after.raw(page)
    }
}

/// HAProxy's `http_get_reason`: the reason `set-status` gives a code
/// when the rule names none.
pub fn standard_reason(status: u16) -> &'static str {
    known_reason(status).unwrap_or(match status {
        100..=199 => "Informational",
        200..=299 => "Success",
        300..=399 => "Redirection",
        400..=499 => "Client Error",
        500..=599 => "Server Error",
        _ => "Other",
    })
}

fn known_reason(status: u16) -> Option<&'static str> {
    Some(match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        210 => "Content Different",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        310 => "Too many Redirects",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Time-out",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Requested range unsatisfiable",
        417 => "Expectation failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable entity",
        423 => "Locked",
        424 => "Method failure",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        449 => "Retry With",
        450 => "Blocked by Windows Parental Controls",
        451 => "Unavailable For Legal Reasons",
        456 => "Unrecoverable Error",
        499 => "client has closed connection",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway or Proxy Error",
        503 => "Service Unavailable",
        504 => "Gateway Time-out",
        505 => "HTTP Version not supported",
        506 => "Variant also negotiate",
        507 => "Insufficient storage",
        508 => "Loop detected",
        509 => "Bandwidth Limit Exceeded",
        510 => "Not extended",
        511 => "Network authentication required",
        520 => "Web server is returning an unknown error",
        _ => return None,
    })
}

/// The reason phrase wsgate writes for `status`.
pub fn reason(status: u16) -> &'static str {
    page_text(status).0
}

fn page_text(status: u16) -> (&'static str, &'static str) {
    match status {
        200 => ("OK", "Service ready."),
        400 => ("Bad request", "Your browser sent an invalid request."),
        401 => ("Unauthorized", "You need a valid user and password to access this content."),
        403 => ("Forbidden", "Request forbidden by administrative rules."),
        404 => ("Not Found", "The resource could not be found."),
        405 => ("Method Not Allowed", "A request was made of a resource using a request method not supported by that resource"),
        429 => ("Too Many Requests", "You have sent too many requests in a given amount of time."),
        408 => (
            "Request Time-out",
            "Your browser didn't send a complete request in time.",
        ),
        414 => ("Request-URI Too Long", "The request line is too long."),
        431 => (
            "Request Header Fields Too Large",
            "The request header fields are too large.",
        ),
        501 => (
            "Not Implemented",
            // Sic: HAProxy 2.6's page starts with a stray '.'.
            ".The server does not support the functionality required to fulfill the request.",
        ),
        502 => (
            "Bad Gateway",
            "The server returned an invalid or incomplete response.",
        ),
        503 => (
            "Service Unavailable",
            "No server is available to handle this request.",
        ),
        504 => ("Gateway Time-out", "The server didn't respond in time."),
        426 => (
            "Upgrade Required",
            "This service requires a WebSocket version the server supports.",
        ),
        505 => (
            "HTTP Version Not Supported",
            "The HTTP version is not supported.",
        ),
        407 => ("Unauthorized", "You need a valid user and password to access this content."),
        410 => ("Gone", "The resource is no longer available and will not be available again."),
        413 => ("Payload Too Large", "The request entity exceeds the maximum allowed."),
        421 => ("Misdirected Request", "Request sent to a non-authoritative server."),
        422 => ("Unprocessable Content", "The server cannot process the contained instructions."),
        425 => ("Too Early", "Your browser sent early data."),
        201 => ("Created", ""),
        202 => ("Accepted", ""),
        204 => ("No Content", ""),
        301 => ("Moved Permanently", ""),
        302 => ("Found", ""),
        303 => ("See Other", ""),
        304 => ("Not Modified", ""),
        307 => ("Temporary Redirect", ""),
        308 => ("Permanent Redirect", ""),
        418 => ("I'm a teapot", ""),
        _ => (
            "Internal Server Error",
            "An internal server error occurred.",
        ),
    }
}

/// The full built-in response for `status`, with one optional extra
/// header line (without its CRLF); the connection is closed after it.
pub fn response_with(status: u16, header: Option<&str>) -> Vec<u8> {
    let (reason, text) = page_text(status);
    let body = format!("<html><body><h1>{status} {reason}</h1>\n{text}\n</body></html>\n");
    let extra = header.map(|h| format!("{h}\r\n")).unwrap_or_default();
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-length: {}\r\ncache-control: no-cache\r\ncontent-type: text/html\r\n{extra}connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// HAProxy's answer to `http-request auth`: the built-in 401 page with
/// `www-authenticate: Basic realm="<realm>"` (the connection stays open).
pub fn unauthorized(realm: &str) -> Vec<u8> {
    let (reason, text) = page_text(401);
    let body = format!("<html><body><h1>401 {reason}</h1>\n{text}\n</body></html>\n");
    format!(
        "HTTP/1.1 401 {reason}\r\ncontent-length: {}\r\ncache-control: no-cache\r\ncontent-type: text/html\r\nwww-authenticate: Basic realm=\"{realm}\"\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A redirect (`redirect`, `http-request redirect`): `code` with
/// `Location`, no body, and the connection closed after it, as HAProxy
/// sends it.
pub fn redirect(code: u16, location: &str) -> Vec<u8> {
    let reason = reason(code);
    format!(
        "HTTP/1.1 {code} {reason}\r\ncontent-length: 0\r\nlocation: {location}\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n"
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    #[test]
    fn length_matches_body() {
        for status in [400, 408, 502, 503, 504] {
            let r = String::from_utf8(super::response_with(status, None)).unwrap();
            let (head, body) = r.split_once("\r\n\r\n").unwrap();
            assert!(head.starts_with(&format!("HTTP/1.1 {status} ")));
            assert!(head.contains(&format!("content-length: {}", body.len())));
        }
    }
}
