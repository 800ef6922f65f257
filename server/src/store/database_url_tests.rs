use tessera_client::Secret;

use super::{Backend, DatabaseUrl, mask_unparsed, mask_urls_in};

const PASSWORD: &str = "S3cret-Pw";

#[track_caller]
fn parse(raw: &str) -> DatabaseUrl {
    DatabaseUrl::parse(raw).unwrap_or_else(|err| panic!("{raw}: {err}"))
}

#[track_caller]
fn refused(raw: &str) -> String {
    match DatabaseUrl::parse(raw) {
        Ok(url) => panic!("{raw} was accepted as {url}"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn the_password_is_taken_out_of_the_user_part() {
    let url = parse("postgres://tessera:S3cret-Pw@db:5432/tessera?sslmode=require");
    assert_eq!(url.backend(), Backend::Postgres);
    assert_eq!(
        url.without_password(),
        "postgres://tessera@db:5432/tessera?sslmode=require"
    );
    assert_eq!(url.password().map(Secret::expose), Some(PASSWORD));
    assert_eq!(
        url.to_string(),
        "postgres://tessera:***@db:5432/tessera?sslmode=require"
    );
    assert_eq!(
        format!("{url:?}"),
        r#"DatabaseUrl("postgres://tessera:***@db:5432/tessera?sslmode=require")"#
    );
}

#[test]
fn a_percent_encoded_password_is_decoded() {
    let url = parse("postgresql://tessera:Ab%2Fcd%40e%23f@db/tessera");
    assert_eq!(url.password().map(Secret::expose), Some("Ab/cd@e#f"));
    assert_eq!(url.without_password(), "postgresql://tessera@db/tessera");
    assert!(!url.to_string().contains("Ab"), "{url}");
}

#[test]
fn the_password_is_taken_out_of_the_query_which_wins() {
    let url = parse("postgres://tessera:first@db/tessera?sslmode=disable&password=S3cret-Pw");
    assert_eq!(url.password().map(Secret::expose), Some(PASSWORD));
    assert_eq!(
        url.without_password(),
        "postgres://tessera@db/tessera?sslmode=disable"
    );
    assert_eq!(
        url.to_string(),
        "postgres://tessera:***@db/tessera?sslmode=disable&password=***"
    );
    let only = parse("postgres://tessera@db/tessera?password=S3cret-Pw");
    assert_eq!(only.without_password(), "postgres://tessera@db/tessera");
}

#[test]
fn sqlite_urls_are_kept_as_they_are() {
    for raw in [
        "sqlite:tessera.db",
        "sqlite:///var/lib/tessera/t.db?mode=rwc",
    ] {
        let url = parse(raw);
        assert_eq!(url.backend(), Backend::Sqlite);
        assert_eq!(url.without_password(), raw);
        assert_eq!(url.to_string(), raw);
        assert!(url.password().is_none());
    }
}

#[test]
fn a_url_that_cuts_its_password_short_is_refused_masked() {
    for (raw, hint) in [
        ("postgres://tessera:Ab/cd+S3cret-Pw@db/tessera", "%2F"),
        ("postgres://tessera:12/cd+S3cret-Pw@db/tessera", "%2F"),
        ("postgres://tessera:12#S3cret-Pw@db/tessera", "%23"),
        ("postgres://tessera:12?S3cret-Pw@db/tessera", "%3F"),
    ] {
        let message = refused(raw);
        assert!(!message.contains(PASSWORD), "{message}");
        assert!(
            message.contains("DATABASE_URL postgres://tessera:***@db/tessera cannot be used"),
            "{message}"
        );
        assert!(message.contains(hint), "{message}");
    }
}

#[test]
fn unknown_schemes_and_parameters_are_refused_masked() {
    let message = refused("mysql://tessera:S3cret-Pw@db/tessera?password=S3cret-Pw");
    assert!(
        message.contains("mysql://tessera:***@db/tessera…"),
        "{message}"
    );
    assert!(message.contains("unsupported scheme `mysql`"), "{message}");
    let message = refused("postgres://tessera@db/tessera?pasword=S3cret-Pw");
    assert!(message.contains("unknown parameter `pasword`"), "{message}");
    assert!(message.contains("?pasword=***"), "{message}");
    let message = refused("postgres://tessera:S3cret-Pw@db/tessera?pasword=S3cret-Pw");
    for message in [message, refused("tessera.db"), refused("tessera:S3cret-Pw")] {
        assert!(!message.contains(PASSWORD), "{message}");
    }
    assert!(
        parse("postgres://db/t?options[statement_timeout]=5s&application_name=x")
            .password()
            .is_none()
    );
}

#[test]
fn unparsed_text_shows_no_password() {
    for (raw, shown) in [
        (
            "postgres://tessera:S3cret-Pw@db/x?y",
            "postgres://tessera:***@db/x…",
        ),
        ("postgres://tessera@db/x", "postgres://tessera@db/x"),
        ("postgres://tessera:S3cret-Pw/x", "postgres://tessera…"),
        ("postgres://db:5x32/tessera", "postgres://db…"),
        ("postgres:tessera:S3cret-Pw@db", "postgres:…"),
    ] {
        assert_eq!(mask_unparsed(raw), shown);
    }
}

#[test]
fn urls_and_passwords_in_messages_are_masked() {
    let message = "The connection string 'postgres://u:Ab/S3cret-Pw@db/t' cannot be parsed. \
                   (host=db password=S3cret-Pw)";
    assert_eq!(
        mask_urls_in(message),
        "The connection string 'postgres://u:***@db/t' cannot be parsed. (host=db password=***"
    );
}

#[test]
fn an_unencoded_at_sign_in_the_password_is_read_as_meant() {
    let url = parse("postgres://tessera:Pw@Secret@db/tessera");
    assert_eq!(url.password().map(Secret::expose), Some("Pw@Secret"));
    assert_eq!(url.without_password(), "postgres://tessera@db/tessera");
    assert!(!url.to_string().contains("Secret"), "{url}");
}
