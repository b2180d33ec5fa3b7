//! Certificates of one `bind ... ssl`: loading `crt` files and
//! directories and `crt-list` files, and choosing a certificate by SNI.
//!
//! Stage: [`load`] runs in `proxy::Prepared::new` (start-up and `-c`); the
//! [`SniResolver`] it builds is installed in the rustls `ServerConfig` and
//! is called once per handshake, with the ClientHello.
//!
//! HAProxy semantics (configuration manual, `crt`, `crt-list`,
//! `strict-sni`): a directory contributes its files in lexical order,
//! skipping `.key .issuer .ocsp .sctl` (and dot files); the key is in the
//! PEM or in `<file>.key`; a certificate answers to its subject CN and DNS
//! SANs, where `*.example.com` covers exactly one leading label; exact
//! names win over wildcards; the first certificate loaded is the default
//! for a missing or unmatched SNI unless `strict-sni`. In a `crt-list`,
//! SNI filters replace the certificate's own names, `!name` excludes a
//! name, and `!*` alone keeps a certificate out of SNI matching (a
//! fallback only); `[options]` before the filters give the certificate
//! settings of its own (list_options.rs, acceptor.rs). Where several
//! certificates match one name (an RSA and an ECDSA one), the first that
//! can sign with a scheme the client offers is used, ECDSA/EdDSA before
//! RSA, as HAProxy prefers ECDSA.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::checks::{self, CertInfo, Finding, KeyKind};
use super::list_options;
pub use super::list_options::LineOptions;
use super::TlsError;
use crate::config::model::{BindSsl, CertSource, Location};

/// File name endings a `crt` directory does not load as certificates.
const RESERVED_SUFFIXES: &[&str] = &[".key", ".issuer", ".ocsp", ".sctl"];

/// One loaded certificate with what `-c` reports about it.
#[derive(Debug)]
pub struct Loaded {
    pub path: PathBuf,
    pub key: Arc<CertifiedKey>,
    pub info: CertInfo,
}

/// A problem while loading: where (the bind line, or a crt-list line),
/// what, and whether it is fatal.
#[derive(Debug)]
pub struct Problem {
    /// `None`: at the bind line.
    pub location: Option<Location>,
    pub error: bool,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    fn from_error(location: Option<Location>, e: &TlsError) -> Problem {
        Problem {
            location,
            error: true,
            message: e.to_string(),
            hint: e.hint(),
        }
    }
}

/// What [`load`] produced.
#[derive(Debug, Default)]
pub struct Store {
    pub certs: Vec<Loaded>,
    /// Per certificate in `certs`: its SNI patterns.
    filters: Vec<Filters>,
    /// Per certificate in `certs`: its crt-list options over the bind's
    /// settings, when its line has `[...]`.
    pub options: Vec<Option<LineOptions>>,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, Default)]
struct Filters {
    /// Exact names and `*.suffix` wildcards (and `*`: any name).
    positive: Vec<String>,
    /// Names never served by this certificate; `*` means all.
    negative: Vec<String>,
}

/// Loads every certificate of a bind, at time `now` (Unix seconds, for
/// the validity checks).
pub fn load(ssl: &BindSsl, provider: &CryptoProvider, now: i64) -> Store {
    let mut store = Store::default();
    for source in ssl.cert_sources() {
        match source {
            CertSource::Crt(path) if path.is_dir() => load_dir(&mut store, &path, provider, now),
            CertSource::Crt(path) => {
                load_one(&mut store, &path, None, Line::default(), provider, now)
            }
            CertSource::CrtList(path) => load_list(&mut store, &path, ssl, provider, now),
        }
    }
    store
}

fn load_dir(store: &mut Store, dir: &Path, provider: &CryptoProvider, now: i64) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            store.problems.push(Problem::from_error(
                None,
                &TlsError::Read {
                    path: dir.to_owned(),
                    reason: e.to_string(),
                },
            ));
            return;
        }
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            !name.starts_with('.')
                && !RESERVED_SUFFIXES.iter().any(|s| name.ends_with(s))
                && p.is_file()
        })
        .collect();
    // Lexical order of the names, as HAProxy's scandir(alphasort).
    files.sort();
    if files.is_empty() {
        store.problems.push(Problem {
            location: None,
            error: true,
            message: format!("certificate directory '{}' has no certificate file", dir.display()),
            hint: Some("put PEM files (certificate, chain and key) in it; files ending in .key, .issuer, .ocsp and .sctl are not loaded as certificates".into()),
        });
    }
    for f in files {
        load_one(store, &f, None, Line::default(), provider, now);
    }
}

/// What a crt-list line says about its certificate besides the file.
#[derive(Debug, Default)]
struct Line {
    filters: Filters,
    options: Option<LineOptions>,
}

fn load_list(store: &mut Store, list: &Path, bind: &BindSsl, provider: &CryptoProvider, now: i64) {
    let text = match std::fs::read_to_string(list) {
        Ok(t) => t,
        Err(e) => {
            store.problems.push(Problem::from_error(
                None,
                &TlsError::Read {
                    path: list.to_owned(),
                    reason: e.to_string(),
                },
            ));
            return;
        }
    };
    let file: Arc<str> = Arc::from(list.display().to_string().as_str());
    let base = list.parent().map(Path::to_path_buf).unwrap_or_default();
    let before = store.certs.len();
    for (n, line) in text.lines().enumerate() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let col = line.len() - line.trim_start().len();
        let loc = |col: usize| Location {
            file: file.clone(),
            line: u32::try_from(n + 1).unwrap_or(u32::MAX),
            col: u32::try_from(col + 1).unwrap_or(u32::MAX),
        };
        let (crt, mut rest) = match trimmed.split_once(char::is_whitespace) {
            Some((c, r)) => (c, r.trim_start()),
            None => (trimmed, ""),
        };
        let mut entry = Line::default();
        // `[options]` come first, before the SNI filters (HAProxy's
        // syntax: `<crtfile> [\[<sslbindconf> ...\]] [[!]<snifilter> ...]`).
        if let Some(open) = rest.strip_prefix('[') {
            let at = loc(line.find('[').unwrap_or(col));
            let Some((inside, after)) = open.split_once(']') else {
                store.problems.push(Problem {
                    location: Some(at),
                    error: true,
                    message: "crt-list options: `[` without its `]`".into(),
                    hint: Some(
                        "`<file.pem> [ssl-min-ver TLSv1.3 alpn http/1.1] [[!]<sni filter> ...]`"
                            .into(),
                    ),
                });
                continue;
            };
            let words: Vec<&str> = inside.split_whitespace().collect();
            let parsed = list_options::parse(&words, &bind.settings, bind.client_auth.as_ref());
            for w in parsed.warnings {
                store.problems.push(Problem {
                    location: Some(at.clone()),
                    error: false,
                    message: w,
                    hint: None,
                });
            }
            match parsed.options {
                Ok(options) => entry.options = Some(options),
                Err(message) => {
                    store.problems.push(Problem {
                        location: Some(at),
                        error: true,
                        message,
                        hint: None,
                    });
                    continue;
                }
            }
            rest = after;
        }
        for w in rest.split_whitespace() {
            match w.strip_prefix('!') {
                Some(neg) => entry.filters.negative.push(neg.to_ascii_lowercase()),
                None => entry.filters.positive.push(w.to_ascii_lowercase()),
            }
        }
        // Relative paths: next to the list (or as written, when that
        // exists from the working directory).
        let path = {
            let p = PathBuf::from(crt);
            if p.is_absolute() || p.exists() {
                p
            } else {
                base.join(p)
            }
        };
        load_one(store, &path, Some(loc(col)), entry, provider, now);
    }
    if store.certs.len() == before && !store.problems.iter().any(|p| p.error) {
        store.problems.push(Problem {
            location: None,
            error: true,
            message: format!("crt-list '{}' lists no certificate", list.display()),
            hint: Some("one line per certificate: `<file.pem> [[!]<sni filter> ...]`".into()),
        });
    }
}

fn load_one(
    store: &mut Store,
    path: &Path,
    at: Option<Location>,
    line: Line,
    provider: &CryptoProvider,
    now: i64,
) {
    let (loaded, findings) = match load_file(path, provider, now) {
        Ok(l) => l,
        Err(e) => {
            store.problems.push(Problem::from_error(at, &e));
            return;
        }
    };
    for f in findings {
        store.problems.push(Problem {
            location: at.clone(),
            error: f.error,
            message: format!("'{}': {}", super::shown(path), f.message),
            hint: f.hint,
        });
    }
    let Some(loaded) = loaded else { return };
    let mut filters = line.filters;
    if filters.positive.is_empty() {
        filters.positive = loaded.info.names.clone();
    }
    store.certs.push(loaded);
    store.filters.push(filters);
    store.options.push(line.options);
}

/// One PEM: chain, key (here or in `<file>.key`), consistency and checks.
fn load_file(
    path: &Path,
    provider: &CryptoProvider,
    now: i64,
) -> Result<(Option<Loaded>, Vec<Finding>), TlsError> {
    let pem = std::fs::read(path).map_err(|e| TlsError::Read {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let chain = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(path.to_owned()));
    }
    let (info, findings) = checks::inspect(&chain, now).map_err(|reason| TlsError::Rejected {
        path: path.to_owned(),
        reason,
    })?;
    if findings.iter().any(|f| f.error) {
        // Unusable whatever the key: report why, skip the key.
        return Ok((None, findings));
    }
    let key = load_key(path, &pem)?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::Rejected {
            path: path.to_owned(),
            reason: format!(
                "the private key cannot be used ({e}); the certificate's key is {}",
                info.key
            ),
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(_) => return Err(TlsError::KeyMismatch(path.to_owned())),
    }
    Ok((
        Some(Loaded {
            path: path.to_owned(),
            key: Arc::new(certified),
            info,
        }),
        findings,
    ))
}

/// A server line's `crt`: the client certificate and key wsgate presents
/// to that server, checked as a bind's certificate is (an error for a
/// certificate no server would accept; warnings are not reported here).
pub fn load_client_identity(
    path: &Path,
    provider: &CryptoProvider,
    now: i64,
) -> Result<Arc<CertifiedKey>, TlsError> {
    match load_file(path, provider, now)? {
        (Some(loaded), _) => Ok(loaded.key),
        (None, findings) => Err(TlsError::Rejected {
            path: path.to_owned(),
            reason: findings
                .into_iter()
                .filter(|f| f.error)
                .map(|f| f.message)
                .collect::<Vec<_>>()
                .join("; "),
        }),
    }
}

/// The key is in the same PEM, or else in `<file>.key` (HAProxy's rule).
fn load_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    if let Ok(key) = PrivateKeyDer::from_pem_slice(pem) {
        return Ok(key);
    }
    let mut key_path = path.as_os_str().to_owned();
    key_path.push(".key");
    PrivateKeyDer::from_pem_file(Path::new(&key_path)).map_err(|_| TlsError::NoKey {
        path: path.to_owned(),
    })
}

impl Store {
    /// The resolver for the loaded certificates, or `None` when none
    /// loaded.
    pub fn resolver(&self, strict_sni: bool) -> Option<SniResolver> {
        if self.certs.is_empty() {
            return None;
        }
        let mut r = SniResolver {
            certs: Vec::new(),
            exact: HashMap::new(),
            wildcard: HashMap::new(),
            any: Vec::new(),
            strict: strict_sni,
        };
        for (i, (c, f)) in self.certs.iter().zip(&self.filters).enumerate() {
            r.certs.push(Candidate {
                key: c.key.clone(),
                rsa: matches!(c.info.key, KeyKind::Rsa(_)),
                negative: f.negative.clone(),
            });
            if f.negative.iter().any(|n| n == "*") {
                continue;
            }
            for p in &f.positive {
                if p == "*" {
                    r.any.push(i);
                } else if let Some(suffix) = p.strip_prefix("*.") {
                    push_unique(r.wildcard.entry(suffix.to_owned()).or_default(), i);
                } else {
                    push_unique(r.exact.entry(p.clone()).or_default(), i);
                }
            }
        }
        Some(r)
    }
}

fn push_unique(v: &mut Vec<usize>, i: usize) {
    if !v.contains(&i) {
        v.push(i);
    }
}

#[derive(Debug)]
struct Candidate {
    key: Arc<CertifiedKey>,
    rsa: bool,
    negative: Vec<String>,
}

/// Chooses the certificate for a handshake from its SNI.
#[derive(Debug)]
pub struct SniResolver {
    /// In load order; the first is the default.
    certs: Vec<Candidate>,
    exact: HashMap<String, Vec<usize>>,
    /// `*.example.com` under `example.com`.
    wildcard: HashMap<String, Vec<usize>>,
    /// SNI filter `*`.
    any: Vec<usize>,
    strict: bool,
}

impl SniResolver {
    /// The certificate index for `sni` and the client's signature schemes
    /// (`None`: refuse the handshake).
    pub fn choose(&self, sni: Option<&str>, schemes: &[SignatureScheme]) -> Option<usize> {
        if let Some(i) = self.matched(sni, schemes) {
            return Some(i);
        }
        if self.strict {
            return None;
        }
        Some(0)
    }

    /// The certificate `sni` selects by name (`None`: no SNI, or none
    /// matches, and the default applies).
    pub fn matched(&self, sni: Option<&str>, schemes: &[SignatureScheme]) -> Option<usize> {
        if let Some(name) = sni {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            let suffix = name.split_once('.').map(|(_, s)| s);
            let tiers = [
                self.exact.get(&name),
                suffix.and_then(|s| self.wildcard.get(s)),
                Some(&self.any),
            ];
            for tier in tiers.into_iter().flatten() {
                if let Some(i) = self.best(tier, &name, schemes) {
                    return Some(i);
                }
            }
        }
        None
    }

    /// ECDSA/EdDSA before RSA, then load order, among the candidates that
    /// can sign for this client and do not exclude `name`.
    fn best(&self, tier: &[usize], name: &str, schemes: &[SignatureScheme]) -> Option<usize> {
        let usable = |&&i: &&usize| {
            let c = &self.certs[i];
            !c.negative.iter().any(|n| n == name)
                && (schemes.is_empty() || c.key.key.choose_scheme(schemes).is_some())
        };
        tier.iter()
            .filter(usable)
            .find(|&&i| !self.certs[i].rsa)
            .or_else(|| tier.iter().find(usable))
            .copied()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let i = self.choose(hello.server_name(), hello.signature_schemes())?;
        Some(self.certs[i].key.clone())
    }
}
