//! `DATABASE_URL`, read once, before anything can echo it.
//!
//! sea-orm and sqlx quote a URL they cannot parse in their errors, record
//! their connect options (the URL among them) in `trace` spans, and log the
//! value of a query parameter they do not know. So they are only ever given
//! the URL without its password; the password, from the user part or from
//! `?password=`, goes straight into sqlx's connect options. Everything that
//! shows a URL (`Display`, `Debug`, every error about one) shows `***` in
//! place of the password.

use std::fmt;

use percent_encoding::percent_decode_str;
use tessera_client::Secret;
use url::Url;

/// Shown in place of a password.
const MASK: &str = "***";

/// How to write a password that URL syntax would cut short.
const ENCODING_HINT: &str = "percent-encode `/`, `@`, `#`, `?`, `:` and `%` in the user name and \
     password (as %2F, %40, %23, %3F, %3A and %25)";

/// The query parameters sqlx reads from a PostgreSQL URL. It ignores any
/// other and logs its value, which may be a misspelt password.
const POSTGRES_PARAMETERS: [&str; 18] = [
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

/// Which database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite:<file>`.
    Sqlite,
    /// `postgres://…` or `postgresql://…`.
    Postgres,
}

/// A usable `DATABASE_URL`, its password kept apart. `Display` and `Debug`
/// show it with `***` for the password.
#[derive(Clone)]
pub struct DatabaseUrl {
    backend: Backend,
    /// The URL without its password: all that sea-orm and sqlx are given.
    public: String,
    /// The URL as shown.
    shown: String,
    password: Option<Secret>,
}

/// Why a `DATABASE_URL` cannot be used. The URL in the message is masked.
#[derive(Clone, Debug, thiserror::Error)]
#[error("DATABASE_URL {shown} cannot be used: {problem}")]
pub struct DatabaseUrlError {
    shown: String,
    problem: String,
}

fn refuse(shown: String, problem: impl Into<String>) -> DatabaseUrlError {
    DatabaseUrlError {
        shown,
        problem: problem.into(),
    }
}

impl DatabaseUrl {
    /// Parses `raw`: `sqlite:<file>`, or `postgres://` with any reserved
    /// character in the user name and password percent-encoded.
    pub fn parse(raw: &str) -> Result<Self, DatabaseUrlError> {
        if raw.starts_with("sqlite:") {
            // A file name holds no password; the path helps the operator.
            return match Url::parse(raw) {
                Ok(_) => Ok(Self {
                    backend: Backend::Sqlite,
                    public: raw.to_owned(),
                    shown: raw.to_owned(),
                    password: None,
                }),
                Err(err) => Err(refuse(raw.to_owned(), format!("not a URL ({err})"))),
            };
        }
        let url = Url::parse(raw).map_err(|err| {
            refuse(
                mask_unparsed(raw),
                format!(
                    "not a URL ({err}); use sqlite:<file> or postgres://…, and {ENCODING_HINT}"
                ),
            )
        })?;
        match url.scheme() {
            "postgres" | "postgresql" => postgres(raw, url),
            scheme => Err(refuse(
                mask_unparsed(raw),
                format!("unsupported scheme `{scheme}`: use sqlite:<file> or postgres://…"),
            )),
        }
    }

    /// Which database it names.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The URL without its password.
    pub(crate) fn without_password(&self) -> &str {
        &self.public
    }

    /// The password, from the user part or `?password=` (which wins, as in sqlx).
    pub(crate) fn password(&self) -> Option<&Secret> {
        self.password.as_ref()
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("DatabaseUrl").field(&self.shown).finish()
    }
}

/// A parsed `postgres://` URL, split into the URL without its password and
/// the password.
fn postgres(raw: &str, mut url: Url) -> Result<DatabaseUrl, DatabaseUrlError> {
    // A reserved character in the password ends the authority early: the
    // rest of the password becomes path, query or fragment, and the `@`
    // after it is the tell.
    let after_host = [Some(url.path()), url.query(), url.fragment()];
    if url.fragment().is_some()
        || after_host
            .into_iter()
            .flatten()
            .any(|part| part.contains('@'))
    {
        return Err(refuse(
            mask_unparsed(raw),
            format!("the user name or password is cut short; {ENCODING_HINT}"),
        ));
    }
    let shown = mask_parsed(&url);
    let mut password = match url.password() {
        Some(encoded) => Some(
            percent_decode_str(encoded)
                .decode_utf8()
                .map_err(|_| refuse(shown.clone(), "the password is not UTF-8 once decoded"))?
                .into_owned(),
        ),
        None => None,
    };
    let mut kept = Vec::new();
    let mut in_query = false;
    for (key, value) in url.query_pairs() {
        if key == "password" {
            password = Some(value.into_owned());
            in_query = true;
        } else if is_known(&key) {
            kept.push((key.into_owned(), value.into_owned()));
        } else {
            return Err(refuse(
                shown,
                format!(
                    "unknown parameter `{key}` (known: {})",
                    POSTGRES_PARAMETERS.join(", ")
                ),
            ));
        }
    }
    let _ = url.set_password(None);
    if in_query {
        url.set_query(None);
        if !kept.is_empty() {
            url.query_pairs_mut().extend_pairs(&kept);
        }
    }
    Ok(DatabaseUrl {
        backend: Backend::Postgres,
        public: url.into(),
        shown,
        password: password.map(Secret::new),
    })
}

/// A parameter sqlx reads: one of the list, or `options[<setting>]`.
fn is_known(key: &str) -> bool {
    POSTGRES_PARAMETERS.contains(&key)
        || key
            .strip_prefix("options[")
            .is_some_and(|rest| rest.ends_with(']'))
}

/// A parsed URL with `***` for its password, in the user part and the
/// query, and for the value of any parameter sqlx does not read.
fn mask_parsed(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some(MASK));
    }
    let hidden = |key: &str| key == "password" || !is_known(key);
    if url.query_pairs().any(|(key, _)| hidden(&key)) {
        let pairs: Vec<(String, String)> = url
            .query_pairs()
            .map(|(key, value)| {
                let value = if hidden(&key) {
                    MASK.into()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        shown.set_query(None);
        shown.query_pairs_mut().extend_pairs(&pairs);
    }
    shown.into()
}

/// What may be shown of text that did not parse as meant: the scheme, the
/// user name, the host and path that follow the last `@`; never what follows
/// the user name's `:`, nor a query or fragment (an ellipsis stands for them).
pub(crate) fn mask_unparsed(raw: &str) -> String {
    let Some((scheme, rest)) = raw.split_once("://") else {
        let scheme = raw.split(':').next().unwrap_or_default();
        return format!("{scheme}:…");
    };
    let (user, host) = match rest.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => (format!("{user}:{MASK}@"), host),
            None => (format!("{userinfo}@"), host),
        },
        // Without an `@` there is no user part; what follows a `:` may
        // still be a password whose host was forgotten.
        None => (String::new(), rest),
    };
    let cut = if user.is_empty() {
        &[':', '/', '?', '#'][..]
    } else {
        &['?', '#'][..]
    };
    match host.split_once(cut) {
        Some((shown, _)) => format!("{scheme}://{user}{shown}…"),
        None => format!("{scheme}://{user}{host}"),
    }
}

/// `text` with every URL in it masked as [`mask_unparsed`] does, and every
/// `password=` value replaced: for messages from sea-orm and sqlx, which
/// should never see a password but would echo one.
pub(crate) fn mask_urls_in(text: &str) -> String {
    let mut masked = String::with_capacity(text.len());
    for (i, word) in text.split(' ').enumerate() {
        if i > 0 {
            masked.push(' ');
        }
        if word.contains("://") {
            masked.push_str(&mask_unparsed(word));
        } else if let Some((before, _)) = word.split_once("password=") {
            masked.push_str(before);
            masked.push_str("password=");
            masked.push_str(MASK);
        } else {
            masked.push_str(word);
        }
    }
    masked
}

#[cfg(test)]
#[path = "database_url_tests.rs"]
mod tests;
