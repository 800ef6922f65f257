use super::*;

/// Two fixed keys, in base64 (32 bytes of 0x11 and of 0x22).
fn key(byte: u8) -> String {
    BASE64.encode([byte; KEY_LEN])
}

fn keyring(bytes: &[u8]) -> Keyring {
    let list: Vec<String> = bytes.iter().map(|b| key(*b)).collect();
    Keyring::parse(&list.join(",")).expect("keys")
}

fn secret() -> Secret {
    Secret::new("tsr_wsi_the-inbound-secret")
}

#[test]
fn a_sealed_value_opens_for_its_workspace() {
    let keys = keyring(&[0x11]);
    let sealed = keys.seal("ws-a", &secret()).expect("seal");
    assert!(sealed.starts_with(&header(keys.current_id().expect("id"))));
    assert!(!sealed.contains("the-inbound-secret"), "{sealed}");
    assert_eq!(keys.open("ws-a", &sealed).expect("open"), secret());
}

#[test]
fn sealing_twice_gives_two_values() {
    let keys = keyring(&[0x11]);
    let (a, b) = (keys.seal("ws", &secret()), keys.seal("ws", &secret()));
    assert_ne!(a.expect("a"), b.expect("b"), "a fresh nonce per value");
}

#[test]
fn a_value_sealed_for_one_workspace_does_not_open_for_another() {
    let keys = keyring(&[0x11]);
    let sealed = keys.seal("ws-a", &secret()).expect("seal");
    assert_eq!(keys.open("ws-b", &sealed).err(), Some(SealError::Forged));
}

#[test]
fn an_altered_value_does_not_open() {
    let keys = keyring(&[0x11]);
    let sealed = keys.seal("ws", &secret()).expect("seal");
    let (head, body) = sealed.rsplit_once(':').expect("body");
    let mut bytes = BASE64.decode(body).expect("base64");
    let last = bytes.len() - 1;
    bytes[NONCE_LEN] ^= 1;
    bytes[last] ^= 0x80;
    let altered = format!("{head}:{}", BASE64.encode(&bytes));
    assert_eq!(keys.open("ws", &altered).err(), Some(SealError::Forged));
    let truncated = format!("{head}:{}", BASE64.encode(&bytes[..NONCE_LEN - 1]));
    assert_eq!(
        keys.open("ws", &truncated).err(),
        Some(SealError::Malformed)
    );
    assert_eq!(
        keys.open("ws", "enc:v9:whatever").err(),
        Some(SealError::Malformed)
    );
}

#[test]
fn a_value_under_a_key_not_configured_is_its_own_error() {
    let (old, new) = (keyring(&[0x11]), keyring(&[0x22]));
    let sealed = old.seal("ws", &secret()).expect("seal");
    let old_id = old.current_id().expect("id").to_owned();
    assert_eq!(
        new.open("ws", &sealed).err(),
        Some(SealError::UnknownKey(old_id.clone()))
    );
    assert_eq!(
        Keyring::default().open("ws", &sealed).err(),
        Some(SealError::UnknownKey(old_id))
    );
}

#[test]
fn the_first_key_seals_and_every_key_opens() {
    let (old, new) = (keyring(&[0x11]), keyring(&[0x22]));
    let both = keyring(&[0x22, 0x11]);
    assert_eq!(both.current_id(), new.current_id());
    let under_old = old.seal("ws", &secret()).expect("seal");
    let under_new = new.seal("ws", &secret()).expect("seal");
    let under_both = both.seal("ws", &secret()).expect("seal");
    for value in [&under_old, &under_new, &under_both] {
        assert_eq!(both.open("ws", value).expect("open"), secret());
    }
    assert_eq!(new.open("ws", &under_both).expect("open"), secret());
    assert!(both.is_current(&under_both) && !both.is_current(&under_old));
}

#[test]
fn plaintext_is_read_as_it_is_and_stored_as_it_is_without_a_key() {
    let none = Keyring::default();
    assert_eq!(none.seal("ws", &secret()).expect("seal"), secret().expose());
    for keys in [none, keyring(&[0x11])] {
        assert_eq!(keys.open("ws", secret().expose()).expect("open"), secret());
        assert_eq!(keys.is_current(secret().expose()), keys.is_empty());
    }
}

#[test]
fn key_ids_are_derived_from_the_key_and_stable() {
    let keys = keyring(&[0x11, 0x22]);
    let ids: Vec<&str> = keys.ids().collect();
    assert_eq!(ids.len(), 2);
    assert_ne!(ids[0], ids[1]);
    assert!(ids.iter().all(|id| is_key_id(id)), "{ids:?}");
    assert_eq!(keyring(&[0x11]).current_id(), Some(ids[0]));
}

#[test]
fn debug_shows_key_ids_and_no_key_material() {
    let keys = keyring(&[0x11, 0x22]);
    let shown = format!("{keys:?} {keys:#?}");
    for byte in [0x11, 0x22] {
        assert!(!shown.contains(&key(byte)), "{shown}");
    }
    assert!(
        !shown.contains("17, 17") && !shown.contains("0x11"),
        "{shown}"
    );
    for id in keys.ids() {
        assert!(shown.contains(id), "{shown}");
    }
}

#[test]
fn a_bad_key_list_is_refused_without_showing_it() {
    let short = BASE64.encode([7u8; 16]);
    let cases = [
        ("".to_owned(), KeyError::Empty),
        (" , ".to_owned(), KeyError::Empty),
        (format!("{},not base64!", key(1)), KeyError::NotBase64(2)),
        (short.clone(), KeyError::WrongLength(1, 16)),
        (format!("{},{}", key(1), key(1)), KeyError::Duplicate(2)),
    ];
    for (list, expected) in cases {
        let err = Keyring::parse(&list).expect_err("refused");
        assert_eq!(err, expected);
        assert!(!err.to_string().contains(&short) && !err.to_string().contains(&key(1)));
    }
    let spaced = format!(" {} ,\n{}\n", key(1), key(2));
    assert_eq!(Keyring::parse(&spaced).expect("keys").ids().count(), 2);
}

#[test]
fn generated_keys_are_fresh_256_bit_keys() {
    let (a, b) = (generate_key().expect("a"), generate_key().expect("b"));
    assert_ne!(a, b);
    assert_eq!(BASE64.decode(&a).expect("base64").len(), KEY_LEN);
    Keyring::parse(&a).expect("usable");
}

#[test]
fn the_census_names_the_keys_it_lacks() {
    let (old, both) = (keyring(&[0x11]), keyring(&[0x22, 0x11]));
    let old_id = old.current_id().expect("id").to_owned();
    let sealed = old.seal("ws", &secret()).expect("seal");
    let mut census = SealedCensus::default();
    census.add(None, 2);
    census.add(Some(&sealed[..header(&old_id).len()]), 3);
    assert_eq!((census.plaintext, census.total()), (2, 5));
    assert_eq!(census.require(&both), Ok(()));
    let refused = census.require(&keyring(&[0x22])).expect_err("refused");
    assert!(refused.to_string().contains(&old_id), "{refused}");
    let refused = census.require(&Keyring::default()).expect_err("refused");
    assert!(
        refused.to_string().contains("no encryption key"),
        "{refused}"
    );
    census.add(Some("enc:v2:something"), 1);
    assert!(census.require(&both).is_err());
}

#[test]
fn a_census_is_stale_until_every_value_is_under_the_current_key() {
    let (old, new) = ("0123456789abcdef", "fedcba9876543210");
    let mut census = SealedCensus::default();
    census.add(Some(&format!("enc:v1:{new}:")), 3);
    assert!(!census.stale(new));
    assert!(census.stale(old), "under a key that is not the current one");
    let mut with_plaintext = census.clone();
    with_plaintext.add(None, 1);
    assert!(with_plaintext.stale(new));
    census.add(Some(&format!("enc:v1:{old}:")), 1);
    assert!(census.stale(new));
}
