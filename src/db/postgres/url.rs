//! A PostgreSQL connection string (URL or libpq keyword/value form) parsed into the client's config, with
//! libpq's `sslmode` values (`verify-ca` and `verify-full` too, which the client crate does not parse) and
//! `sslrootcert`. Owns the redacted display: user, hosts, ports and database, never the password.

use std::path::PathBuf;
use std::str::FromStr;

use crate::db::url::UrlError;

/// libpq's `sslmode`, the subset that means something over TCP with rustls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, certificate unchecked (libpq's default).
    Prefer,
    /// TLS always; the certificate is checked against `sslrootcert` when one is given (as libpq does).
    Require,
    /// TLS, the chain checked against the roots, the host name not.
    VerifyCa,
    /// TLS, the chain and the host name checked.
    VerifyFull,
}

/// A parsed PostgreSQL connection string. `Display`/`Debug` show no password.
#[derive(Clone)]
pub struct PgUrl {
    pub(crate) config: postgres::Config,
    pub(crate) ssl_mode: SslMode,
    /// PEM file of the roots to trust (`sslrootcert`); the public web roots when absent.
    pub(crate) root_cert: Option<PathBuf>,
}

impl PartialEq for PgUrl {
    fn eq(&self, other: &Self) -> bool {
        // The client's config has no `PartialEq`; its `Debug` shows every field but the password.
        format!("{:?}", self.config) == format!("{:?}", other.config)
            && self.config.get_password() == other.config.get_password()
            && self.ssl_mode == other.ssl_mode
            && self.root_cert == other.root_cert
    }
}

impl Eq for PgUrl {}

impl PgUrl {
    pub(crate) fn parse(text: &str) -> Result<Self, UrlError> {
        let (rest, ssl_mode, root_cert) = take_tls_params(text)?;
        let mut config = postgres::Config::from_str(&rest).map_err(|e| UrlError::Postgres(e.to_string()))?;
        if config.get_application_name().is_none() {
            config.application_name("aibridged");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(std::time::Duration::from_secs(5));
        }
        let ssl_mode = match ssl_mode.as_deref() {
            None | Some("prefer") | Some("allow") => {
                if root_cert.is_some() {
                    SslMode::Require
                } else {
                    SslMode::Prefer
                }
            }
            Some("disable") => SslMode::Disable,
            Some("require") => SslMode::Require,
            Some("verify-ca") => SslMode::VerifyCa,
            Some("verify-full") => SslMode::VerifyFull,
            Some(_) => return Err(UrlError::Postgres("invalid value for option `sslmode`".into())),
        };
        config.ssl_mode(match ssl_mode {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            _ => postgres::config::SslMode::Require,
        });
        Ok(PgUrl { config, ssl_mode, root_cert: root_cert.map(PathBuf::from) })
    }
}

/// Removes `sslmode` and `sslrootcert` from a URL query or a keyword/value string, returning the rest and
/// both values.
fn take_tls_params(text: &str) -> Result<(String, Option<String>, Option<String>), UrlError> {
    let (mut mode, mut root) = (None, None);
    if text.contains("://") {
        let Some((base, query)) = text.split_once('?') else {
            return Ok((text.to_owned(), None, None));
        };
        let mut kept = Vec::new();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("sslmode", v)) => mode = Some(percent_decode(v)?),
                Some(("sslrootcert", v)) => root = Some(percent_decode(v)?),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
        return Ok((rest, mode, root));
    }
    let mut rest = String::new();
    for (key, value, raw) in keyword_pairs(text)? {
        match key {
            "sslmode" => mode = Some(value),
            "sslrootcert" => root = Some(value),
            _ => {
                rest.push_str(raw);
                rest.push(' ');
            }
        }
    }
    Ok((rest, mode, root))
}

/// Splits libpq's `key = value` form (values may be single-quoted with backslash escapes) into
/// (key, unquoted value, raw text of the pair).
fn keyword_pairs(text: &str) -> Result<Vec<(&str, String, &str)>, UrlError> {
    let bad = || UrlError::Postgres("malformed keyword/value connection string".into());
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let skip_ws = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    loop {
        i = skip_ws(i);
        if i == bytes.len() {
            return Ok(out);
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &text[start..i];
        i = skip_ws(i);
        if key.is_empty() || bytes.get(i) != Some(&b'=') {
            return Err(bad());
        }
        i = skip_ws(i + 1);
        let mut value = String::new();
        if bytes.get(i) == Some(&b'\'') {
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return Err(bad()),
                    Some(b'\'') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') if i + 1 < bytes.len() => {
                        value.push(bytes[i + 1] as char);
                        i += 2;
                    }
                    Some(_) => {
                        let ch = text[i..].chars().next().ok_or_else(bad)?;
                        value.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
        } else {
            let v = i;
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            value.push_str(&text[v..i]);
        }
        out.push((key, value, &text[start..i]));
    }
}

fn percent_decode(v: &str) -> Result<String, UrlError> {
    let bytes = v.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = v.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            out.push(hex.ok_or_else(|| UrlError::Postgres("malformed percent escape".into()))?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| UrlError::Postgres("a parameter is not UTF-8".into()))
}

impl std::fmt::Display for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("postgres://")?;
        if let Some(user) = self.config.get_user() {
            write!(f, "{user}@")?;
        }
        let ports = self.config.get_ports();
        for (i, host) in self.config.get_hosts().iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match host {
                postgres::config::Host::Tcp(h) => f.write_str(h)?,
                #[cfg(unix)]
                postgres::config::Host::Unix(p) => write!(f, "{}", p.display())?,
            }
            if let Some(port) = ports.get(i).or(ports.first()) {
                write!(f, ":{port}")?;
            }
        }
        if let Some(db) = self.config.get_dbname() {
            write!(f, "/{db}")?;
        }
        let mode = match self.ssl_mode {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        };
        write!(f, "?sslmode={mode}")
    }
}

impl std::fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PgUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_forms_and_every_sslmode() {
        let u = PgUrl::parse("postgres://alice:pw@db.example:6543/aibridge?sslmode=verify-full&sslrootcert=%2Fca.pem")
            .unwrap();
        assert_eq!(u.ssl_mode, SslMode::VerifyFull);
        assert_eq!(u.root_cert.as_deref(), Some(std::path::Path::new("/ca.pem")));
        assert_eq!(u.config.get_user(), Some("alice"));
        assert_eq!(u.config.get_password(), Some(&b"pw"[..]));
        assert_eq!(u.config.get_ports(), &[6543]);
        assert_eq!(u.to_string(), "postgres://alice@db.example:6543/aibridge?sslmode=verify-full");

        let k =
            PgUrl::parse("host=db port=6543 user=alice password='p w\\'x' dbname=aibridge sslmode=require").unwrap();
        assert_eq!(k.ssl_mode, SslMode::Require);
        assert_eq!(k.config.get_password(), Some(&b"p w'x"[..]));
        assert_eq!(k.config.get_dbname(), Some("aibridge"));

        for (mode, want) in [
            ("disable", SslMode::Disable),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
            ("verify-ca", SslMode::VerifyCa),
        ] {
            assert_eq!(PgUrl::parse(&format!("postgresql://h/d?sslmode={mode}")).unwrap().ssl_mode, want);
        }
        assert_eq!(PgUrl::parse("postgresql://h/d").unwrap().ssl_mode, SslMode::Prefer);
        assert!(PgUrl::parse("postgresql://h/d?sslmode=sometimes").is_err());
        assert!(PgUrl::parse("host='unterminated").is_err());
    }
}
