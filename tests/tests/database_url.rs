//! `DATABASE_URL` is shown nowhere with its password: a URL that cannot be
//! used fails every command that opens the database with a clear message
//! and exit status 1, the password replaced by `***`; `--help` does not
//! print the variable's value. (A usable URL's password stays out of the
//! logs too: see `logs.rs`.)

use std::process::Output;

use tessera_tests::run_tessera_async;

/// Every command that opens the database; an empty one is bare `tessera`,
/// which serves.
const COMMANDS: [&[&str]; 5] = [
    &["serve"],
    &[],
    &["migrate"],
    &["install-token", "status"],
    &["install-token", "regenerate"],
];

/// A URL that cannot be used, its password, and what the message must say.
struct BadUrl {
    url: &'static str,
    password: &'static str,
    says: &'static [&'static str],
}

const BAD_URLS: [BadUrl; 8] = [
    // An unescaped `/` in the password: not a URL at all.
    BadUrl {
        url: "postgres://tessera:Ab/cd+Secret-one@db/tessera",
        password: "Ab/cd+Secret-one",
        says: &["DATABASE_URL", "postgres://tessera:***@db/tessera", "%2F"],
    },
    // A `/` after digits: a URL, but with the password's rest taken as the
    // database name.
    BadUrl {
        url: "postgres://tessera:12/cd+Secret-six@db/tessera",
        password: "Secret-six",
        says: &["DATABASE_URL", "postgres://tessera:***@db/tessera", "%2F"],
    },
    // A `#` in the password: the rest would be taken as a fragment.
    BadUrl {
        url: "postgres://tessera:12#Secret-two@db/tessera",
        password: "Secret-two",
        says: &["DATABASE_URL", "postgres://tessera:***@db/tessera", "%23"],
    },
    // A `?`: the rest would be taken as a parameter.
    BadUrl {
        url: "postgres://tessera:12?Secret-eight@db/tessera",
        password: "Secret-eight",
        says: &["DATABASE_URL", "postgres://tessera:***@db/tessera", "%3F"],
    },
    BadUrl {
        url: "mysql://tessera:Secret-three@db/tessera?password=Secret-three",
        password: "Secret-three",
        says: &[
            "DATABASE_URL",
            "mysql://tessera:***@db/tessera",
            "postgres://",
        ],
    },
    // A misspelt parameter: sqlx would ignore it and log its value.
    BadUrl {
        url: "postgres://tessera@127.0.0.1:1/tessera?pasword=Secret-four",
        password: "Secret-four",
        says: &["DATABASE_URL", "pasword"],
    },
    // Well-formed but unreachable: the password only in the user part...
    BadUrl {
        url: "postgres://tessera:Secret-five@127.0.0.1:1/tessera",
        password: "Secret-five",
        says: &["database", "postgres://tessera:***@127.0.0.1:1/tessera"],
    },
    // ...and only in the query.
    BadUrl {
        url: "postgres://tessera@127.0.0.1:1/tessera?sslmode=disable&password=Secret-seven",
        password: "Secret-seven",
        says: &["database", "password=***"],
    },
];

/// Runs every command on `url` at once, with JSON logs at `trace`; returns
/// each command line with its output.
async fn run_every_command(url: &str) -> Vec<(String, Output)> {
    let runs: Vec<_> = COMMANDS
        .iter()
        .map(|args| {
            let url = url.to_owned();
            tokio::spawn(async move {
                let env = [
                    ("DATABASE_URL", url.as_str()),
                    ("TESSERA_LISTEN", "127.0.0.1:0"),
                    ("TESSERA_LOG_FORMAT", "json"),
                    ("RUST_LOG", "trace"),
                ];
                let out = run_tessera_async(args, &env).await;
                (format!("tessera {}", args.join(" ")), out)
            })
        })
        .collect();
    let mut outputs = Vec::new();
    for run in runs {
        outputs.push(run.await.expect("the command ran"));
    }
    outputs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_database_url_fails_clearly_without_its_password() {
    for bad in &BAD_URLS {
        for (command, out) in run_every_command(bad.url).await {
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            let both = format!("{stdout}{stderr}");
            assert!(
                !both.contains(bad.password),
                "{command} on {}: the password was written out:\n{both}",
                bad.url
            );
            assert_eq!(
                out.status.code(),
                Some(1),
                "{command} on {}: exit status:\n{stderr}",
                bad.url
            );
            let error = stderr
                .lines()
                .find(|line| {
                    line.contains(r#""level":"ERROR""#) && line.contains(r#""target":"tessera""#)
                })
                .unwrap_or_else(|| panic!("{command} on {}: no error line:\n{stderr}", bad.url));
            for expected in bad.says {
                assert!(
                    error.contains(expected),
                    "{command} on {}: the error names {expected:?}:\n{error}",
                    bad.url
                );
            }
            assert!(
                !stderr.contains("panicked"),
                "{command} panicked:\n{stderr}"
            );
        }
    }
}

#[tokio::test]
async fn help_does_not_print_the_database_url() {
    let url = "postgres://tessera:Help-Secret-1@db/tessera";
    for args in [
        &["serve", "--help"][..],
        &["migrate", "--help"],
        &["install-token", "--help"],
    ] {
        let out = run_tessera_async(args, &[("DATABASE_URL", url)]).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}: {:?}", out.status);
        assert!(
            stdout.contains("DATABASE_URL"),
            "{args:?} documents the variable:\n{stdout}"
        );
        assert!(
            !stdout.contains("Help-Secret-1"),
            "{args:?} printed the password:\n{stdout}"
        );
    }
}
