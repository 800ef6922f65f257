//! Control characters in requests. A free-text field holding one is
//! INVALID_ARGUMENT with a `BadRequest` naming the field, on every RPC; a
//! credential holding one is refused like any bad credential, and what is
//! derived from it (the ticket prefix in the error, the log and the audit
//! entry) carries it escaped, never raw. On both backends: PostgreSQL
//! refuses U+0000 in text, SQLite stores it.

use sea_orm::DatabaseConnection;
use tessera_client::Client;
use tessera_client::pb;
use tessera_client::tonic::{Code, Status};
use tessera_tests::audit::{AuditRow, audit_rows};
use tessera_tests::grpc::{consume_install_token, provision_workspace, register_workspace};
use tessera_tests::install::boot_token;
use tessera_tests::{
    TestDatabase, TestServer, assert_status, consume_ticket, mint_ticket, violated_fields,
};

/// Characters no free-text field accepts: C0 controls (NUL first), DEL, a
/// C1 control (which is also white space), a line break, an escape, a
/// bidirectional override and a line separator; and invisible format
/// characters: bidirectional marks, a zero width space, a byte order mark,
/// a soft hyphen, invisible operators, a Mongolian vowel separator, an
/// interlinear annotation anchor and tags; and invisible characters of
/// other categories: Hangul fillers, a combining grapheme joiner and the
/// blank Braille pattern; a private-use character and a noncharacter.
const UNPRINTABLE: [char; 28] = [
    '\0',
    '\u{7}',
    '\u{1b}',
    '\u{7f}',
    '\u{85}',
    '\n',
    '\t',
    '\u{202e}',
    '\u{2028}',
    '\u{200e}',
    '\u{200f}',
    '\u{61c}',
    '\u{200b}',
    '\u{feff}',
    '\u{ad}',
    '\u{2060}',
    '\u{2064}',
    '\u{206a}',
    '\u{180e}',
    '\u{fff9}',
    '\u{e0001}',
    '\u{e0041}',
    '\u{3164}',
    '\u{115f}',
    '\u{34f}',
    '\u{2800}',
    '\u{e000}',
    '\u{ffff}',
];

/// A name with a zero width joiner, which emoji sequences (and some
/// scripts) need: accepted.
const JOINED_NAME: &str = "Ada \u{1f469}\u{200d}\u{1f4bb}";

/// The purpose of the ticket whose consumption is tried with bad purposes.
const PURPOSE: &str = "ws-upgrade";
/// The workspace the bad RegisterWorkspace calls authenticate as.
const WORKSPACE: &str = "ws-ok";

/// A server calling as `SCHEDULER` (an admin service) and a connection to
/// its database.
struct Env {
    server: TestServer,
    scheduler: Client,
    conn: DatabaseConnection,
}

async fn open(db: &TestDatabase) -> Env {
    let server = TestServer::start_scheduler(db, &[]).await;
    let scheduler = server.scheduler().await;
    Env {
        server,
        scheduler,
        conn: db.connect().await,
    }
}

/// A free-text request field: the RPC it belongs to, and its name.
#[derive(Clone, Copy, Debug)]
enum Field {
    MintUserId,
    MintProvider,
    MintPurpose,
    ConsumePurpose,
    AdminEmail,
    AdminName,
    ProvisionWorkspaceId,
    ProvisionName,
    RegisterWorkspaceId,
    InboundSecretWorkspaceId,
}

const FIELDS: [Field; 10] = [
    Field::MintUserId,
    Field::MintProvider,
    Field::MintPurpose,
    Field::ConsumePurpose,
    Field::AdminEmail,
    Field::AdminName,
    Field::ProvisionWorkspaceId,
    Field::ProvisionName,
    Field::RegisterWorkspaceId,
    Field::InboundSecretWorkspaceId,
];

impl Field {
    /// The name the `BadRequest` field violation must give.
    fn name(self) -> &'static str {
        match self {
            Field::MintUserId => "user_id",
            Field::MintProvider => "provider",
            Field::MintPurpose | Field::ConsumePurpose => "purpose",
            Field::AdminEmail => "admin_email",
            Field::AdminName => "admin_name",
            Field::ProvisionName => "name",
            Field::ProvisionWorkspaceId
            | Field::RegisterWorkspaceId
            | Field::InboundSecretWorkspaceId => "workspace_id",
        }
    }

    /// Values holding `bad`, alone and inside an otherwise valid value.
    fn values(self, bad: char) -> [String; 2] {
        match self {
            Field::AdminEmail => [
                format!("{bad}ada@example.com"),
                format!("ada{bad}x@example.com"),
            ],
            _ => [bad.to_string(), format!("a{bad}z")],
        }
    }
}

/// What the calls need: a ticket to consume, the install token, and a
/// workspace's registration token.
struct Credentials {
    ticket: String,
    install_token: String,
    registration: String,
}

/// The call of `field`'s RPC with `value` in that field and valid values
/// elsewhere.
async fn call(env: &Env, creds: &Credentials, field: Field, value: &str) -> Result<(), Status> {
    let mut scheduler = env.scheduler.clone();
    let owned = value.to_owned();
    match field {
        Field::MintUserId | Field::MintProvider | Field::MintPurpose => {
            let mut request = pb::MintTicketRequest {
                user_id: "user-1".into(),
                provider: "github".into(),
                purpose: String::new(),
                ttl_seconds: 0,
            };
            match field {
                Field::MintUserId => request.user_id = owned,
                Field::MintProvider => request.provider = owned,
                _ => request.purpose = owned,
            }
            scheduler.mint_ticket(request).await.map(drop)
        }
        Field::ConsumePurpose => consume_ticket(&mut scheduler, &creds.ticket, value)
            .await
            .map(drop),
        Field::AdminEmail | Field::AdminName => {
            let mut anonymous = env.server.client(None).await;
            let (email, name) = match field {
                Field::AdminEmail => (value, "Ada"),
                _ => ("ada@example.com", value),
            };
            consume_install_token(&mut anonymous, &creds.install_token, email, name)
                .await
                .map(drop)
        }
        Field::ProvisionWorkspaceId => provision_workspace(&mut scheduler, value, "W")
            .await
            .map(drop),
        Field::ProvisionName => provision_workspace(&mut scheduler, "ws-new", value)
            .await
            .map(drop),
        Field::RegisterWorkspaceId => {
            register_workspace(&env.server, &creds.registration, value, false)
                .await
                .map(drop)
        }
        Field::InboundSecretWorkspaceId => {
            let request = pb::GetInboundSecretRequest {
                workspace_id: owned,
            };
            scheduler.get_inbound_secret(request).await.map(drop)
        }
    }
}

/// Every free-text field of every RPC refuses every unprintable character,
/// alone or inside a valid value, as INVALID_ARGUMENT naming the field.
/// Nothing was spent meanwhile (the ticket and the install token still
/// work), and no audit column holds a control character raw: the refused
/// registrations are audited with their id escaped.
async fn free_text_fields_refuse_control_characters(mut env: Env) {
    let ticket = mint_ticket(&mut env.scheduler, "user-1", PURPOSE, 300)
        .await
        .expect("mint");
    let provisioned = provision_workspace(&mut env.scheduler, WORKSPACE, "W")
        .await
        .expect("provision");
    let creds = Credentials {
        ticket,
        install_token: boot_token(&env.server).await,
        registration: provisioned.registration_token,
    };
    let mut refused_registrations = Vec::new();
    for field in FIELDS {
        for bad in UNPRINTABLE {
            for value in field.values(bad) {
                let status = call(&env, &creds, field, &value)
                    .await
                    .expect_err(&format!("{field:?} = {value:?} accepted"));
                assert_status(&status, Code::InvalidArgument, None);
                let violated = violated_fields(&status);
                assert_eq!(
                    violated,
                    [field.name()],
                    "{field:?} = {value:?}: {status:?}"
                );
                if let Field::RegisterWorkspaceId = field {
                    refused_registrations.push(value);
                }
            }
        }
    }

    consume_ticket(&mut env.scheduler, &creds.ticket, PURPOSE)
        .await
        .expect("the ticket was not spent by the refused calls");
    let mut anonymous = env.server.client(None).await;
    consume_install_token(
        &mut anonymous,
        &creds.install_token,
        "ada@example.com",
        JOINED_NAME,
    )
    .await
    .expect("the install token was not spent by the refused calls");

    let rows = audit_rows(&env.conn).await;
    assert_printable(&rows);
    let registrations: Vec<&str> = rows
        .iter()
        .filter(|row| row.action == "workspace.register")
        .map(|row| row.resource.as_str())
        .collect();
    let expected: Vec<String> = refused_registrations
        .iter()
        .map(|id| format!("workspace:{}", escaped(id)))
        .collect();
    assert_eq!(
        registrations, expected,
        "each refused registration is audited"
    );
}

/// No column of any audit row holds a control or format character.
#[track_caller]
fn assert_printable(rows: &[AuditRow]) {
    for row in rows {
        for value in row.values() {
            assert!(
                !value
                    .chars()
                    .any(|c| c.is_control() || UNPRINTABLE.contains(&c)),
                "raw unprintable character in {row:?}"
            );
        }
    }
}

/// `text` as the audit log stores it: a backslash doubled, every
/// unprintable character as `\u{XXXX}` (at least four upper-case hex digits).
fn escaped(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            c if UNPRINTABLE.contains(&c) => out.push_str(&format!("\\u{{{:04X}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// A ticket holding a control character is a malformed ticket:
/// UNAUTHENTICATED `TICKET_MALFORMED`. The error, the log and the audit
/// entry name its first 8 characters escaped; the audit entry exists (on
/// PostgreSQL too, which refuses a raw NUL).
async fn tickets_holding_control_characters_are_refused_and_audited(mut env: Env) {
    let cases = [
        ("\0", "\\u{0000}…"),
        ("\0tsr_tkt_abc", "\\u{0000}tsr_tkt…"),
        ("tsr\u{7}tkt_x", "tsr\\u{0007}tkt_…"),
        ("tsr_tkt_\0\0", "tsr_tkt_…"),
        ("\u{1b}[2J\u{202e}ab\\", "\\u{001B}[2J\\u{202E}ab\\\\…"),
        ("\u{200e}tsr_tkt_x", "\\u{200E}tsr_tkt…"),
        (
            "tsr_\u{feff}\u{e0041}\u{ad}_x",
            "tsr_\\u{FEFF}\\u{E0041}\\u{00AD}_…",
        ),
    ];
    for (ticket, prefix) in cases {
        let status = consume_ticket(&mut env.scheduler, ticket, "")
            .await
            .expect_err("a malformed ticket");
        assert_status(&status, Code::Unauthenticated, Some("TICKET_MALFORMED"));
        assert_eq!(
            status.message(),
            format!("ticket {prefix} refused"),
            "{ticket:?}"
        );
    }
    let rows = audit_rows(&env.conn).await;
    assert_printable(&rows);
    let consumed: Vec<(&str, &str, &str)> = rows
        .iter()
        .filter(|row| row.action == "ticket.consume")
        .map(|row| {
            (
                row.actor.as_str(),
                row.resource.as_str(),
                row.outcome.as_str(),
            )
        })
        .collect();
    let expected: Vec<(&str, &str, &str)> = cases
        .iter()
        .map(|(_, prefix)| ("scheduler@system.local", *prefix, "TICKET_MALFORMED"))
        .collect();
    assert_eq!(consumed, expected, "one audit entry per attempt, escaped");
    let stderr = env.server.stderr();
    assert!(!stderr.contains('\0'), "a NUL reached the log");
    for c in ['\u{202e}', '\u{200e}', '\u{feff}'] {
        assert!(!stderr.contains(c), "{c:?} reached the log");
    }
}

tessera_tests::on_both_backends!(open =>
    free_text_fields_refuse_control_characters,
    tickets_holding_control_characters_are_refused_and_audited,
);
