//! `errorfile <code> <file>`: a full raw HTTP response sent instead of
//! wsgate's built-in page for that status.
//!
//! Stage: the handler reads the file when the configuration is loaded (a
//! missing or malformed file is an error at its line, as in HAProxy; the
//! file is never read again until a reload); the session picks the page
//! with `proxy::errors`. HAProxy's precedence: a proxy's own `errorfile`
//! lines over those inherited from `defaults`; for an error tied to a
//! backend, the backend's page over the frontend's.

use std::sync::Arc;

use super::parser::{Cx, ProxyDraft};

/// The statuses HAProxy 2.6 lets `errorfile` replace.
pub const ERRORFILE_CODES: [u16; 19] = [
    200, 400, 401, 403, 404, 405, 407, 408, 410, 413, 421, 422, 425, 429, 500, 501, 502, 503, 504,
];

/// A proxy's custom error pages: status → the response bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorFiles {
    pages: Vec<(u16, Arc<[u8]>)>,
}

impl ErrorFiles {
    pub fn get(&self, status: u16) -> Option<&Arc<[u8]>> {
        self.pages
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, p)| p)
    }

    /// Sets the page for `status`, replacing an earlier one (a later line,
    /// or the proxy's own line over its `defaults`).
    fn set(&mut self, status: u16, page: Arc<[u8]>) {
        self.pages.retain(|(s, _)| *s != status);
        self.pages.push((status, page));
    }
}

/// `errorfile <code> <file>`.
pub fn errorfile(p: &mut ProxyDraft, cx: &mut Cx<'_>) {
    let args = cx.args;
    let [code, file] = args else {
        let at = args.get(2).unwrap_or(cx.kw);
        cx.error(at, "'errorfile' takes a status code and a file")
            .hint = Some("e.g. `errorfile 503 /etc/wsgate/errors/503.http`".into());
        return;
    };
    let status = match code.text.parse::<u16>() {
        Ok(n) if ERRORFILE_CODES.contains(&n) => n,
        _ => {
            cx.error(
                code,
                format!("errorfile: status code '{}' is not handled", code.text),
            )
            .hint = Some(format!("HAProxy 2.6 handles {ERRORFILE_CODES:?}"));
            return;
        }
    };
    let bytes = match std::fs::read(&file.text) {
        Ok(b) => b,
        Err(e) => {
            cx.error(file, format!("cannot read errorfile '{}': {e}", file.text))
                .hint = Some(
                "the file is read at start; a relative path is taken from the working directory"
                    .into(),
            );
            return;
        }
    };
    match check_response(&bytes) {
        Ok(()) => p.errorfiles.set(status, Arc::from(bytes)),
        Err(why) => {
            cx.error(
                file,
                format!("errorfile '{}' is not an HTTP response: {why}", file.text),
            )
            .hint = Some(
                "the file is sent as it is: a status line, headers, an empty line, then the body"
                    .into(),
            );
        }
    }
}

/// The file must start with a complete response head, as HAProxy checks.
fn check_response(bytes: &[u8]) -> Result<(), String> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut r = httparse::Response::new(&mut headers);
    match r.parse(bytes) {
        Ok(httparse::Status::Complete(_)) => Ok(()),
        Ok(httparse::Status::Partial) => Err("the head does not end with an empty line".into()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_checked() {
        assert!(check_response(b"HTTP/1.1 503 Busy\r\ncontent-length: 0\r\n\r\n").is_ok());
        assert!(check_response(b"HTTP/1.0 503 Busy\r\n\r\nbody").is_ok());
        assert!(check_response(b"<html>oops</html>").is_err());
        assert!(check_response(b"HTTP/1.1 503 Busy\r\nx: y\r\n").is_err());
    }

    #[test]
    fn later_lines_replace_earlier_ones() {
        let mut e = ErrorFiles::default();
        e.set(503, Arc::from(&b"a"[..]));
        e.set(503, Arc::from(&b"b"[..]));
        assert_eq!(e.get(503).map(|p| &p[..]), Some(&b"b"[..]));
        assert!(e.get(502).is_none());
    }
}
