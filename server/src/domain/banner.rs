//! The install-token banner, and where it goes: standard output in the
//! binary, a buffer in tests. Its text is the only place a raw install
//! token ever appears.

use std::io::Write;
use std::sync::Arc;
#[cfg(test)]
use std::sync::Mutex;

use tessera_client::Secret;

type Show = dyn Fn(&str) + Send + Sync;

/// Where the install-token banner is shown.
#[derive(Clone)]
pub(crate) struct BannerSink(Arc<Show>);

impl std::fmt::Debug for BannerSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BannerSink")
    }
}

impl BannerSink {
    /// Prints banners on standard output. A closed stdout is logged, never
    /// a panic; the token is then lost and must be regenerated.
    pub(crate) fn stdout() -> Self {
        Self(Arc::new(|text| {
            let mut stdout = std::io::stdout().lock();
            if let Err(err) = writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
                tracing::error!(error = %err, "could not print the install token banner; run `tessera install-token regenerate`");
            }
        }))
    }

    /// Keeps every banner in memory, for tests: the sink and what it holds.
    #[cfg(test)]
    pub(crate) fn buffer() -> (Self, Arc<Mutex<Vec<String>>>) {
        let shown = Arc::new(Mutex::new(Vec::new()));
        let kept = shown.clone();
        let sink = Self(Arc::new(move |text: &str| {
            if let Ok(mut shown) = kept.lock() {
                shown.push(text.to_owned());
            }
        }));
        (sink, shown)
    }

    /// Shows the banner of `token`.
    pub(crate) fn show(&self, token: &Secret) {
        (self.0)(&banner(token));
    }
}

/// The banner: a rule, how to use the token, a greppable
/// `INSTALL TOKEN: <token>` line, a rule.
fn banner(token: &Secret) -> String {
    let rule = "=".repeat(72);
    format!(
        "{rule}\nTessera first boot: create the first administrator with ConsumeInstallToken.\nThis token is shown once; `tessera install-token regenerate` replaces it.\nINSTALL TOKEN: {}\n{rule}",
        token.expose()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn banner_has_one_greppable_line() {
        let (sink, shown) = BannerSink::buffer();
        sink.show(&Secret::new("tsr_ins_abc"));
        let shown = shown.lock().expect("lock").clone();
        assert_eq!(shown.len(), 1);
        let lines = shown[0].lines();
        let matching = lines.filter(|l| *l == "INSTALL TOKEN: tsr_ins_abc").count();
        assert_eq!(matching, 1);
    }
}
