//! Genesis files: read raw with unknown keys refused, validated with errors that name the key and the rule.

use credence_ledger::genesis::{Genesis, GenesisError, Role};
use credence_ledger::sig::SecretKey;

fn pk(n: u8) -> String {
    hex::encode(SecretKey::from_seed([n; 32]).public().0)
}

fn base(members: &str) -> String {
    format!(
        "chain_id = \"t\"\ncheckpoint_origin = \"credence.example/t\"\ngenesis_time_ms = 0\n\n[consensus]\nblock_records_max = 1000\nblock_bytes_max = 1048576\ntimeout_propose_ms = 1000\ntimeout_prevote_ms = 500\ntimeout_precommit_ms = 500\ntimeout_delta_ms = 250\n{members}"
    )
}

fn member(name: &str, key: &str, roles: &str, validator: bool) -> String {
    format!("\n[[members]]\nname = \"{name}\"\npublic_key = \"{key}\"\nroles = [{roles}]\nvalidator = {validator}\n")
}

fn invalid(text: &str) -> (String, String) {
    match Genesis::from_toml(text) {
        Err(GenesisError::Invalid { key, rule }) => (key, rule),
        other => panic!("expected an invalid-value error, got {other:?}"),
    }
}

#[test]
fn a_valid_genesis_round_trips_and_sorts_members() {
    let text =
        base(&(member("zeta", &pk(1), "\"bank\"", true) + &member("alpha", &pk(2), "\"appraiser\", \"bank\"", false)));
    let g = Genesis::from_toml(&text).unwrap();
    assert_eq!(g.members[0].name.as_str(), "alpha");
    assert_eq!(g.members[0].roles, vec![Role::Bank, Role::Appraiser]);
    assert_eq!(g.validators().count(), 1);
    assert_eq!(Genesis::from_toml(&g.to_toml()).unwrap(), g);
    // The hash is of the validated value: member order in the file does not matter.
    let swapped =
        base(&(member("alpha", &pk(2), "\"bank\", \"appraiser\"", false) + &member("zeta", &pk(1), "\"bank\"", true)));
    assert_eq!(Genesis::from_toml(&swapped).unwrap().hash(), g.hash());
}

#[test]
fn unknown_keys_are_refused_with_their_place() {
    let text = base(&member("a", &pk(1), "\"bank\"", true)).replace("chain_id", "chain_idd");
    let Err(GenesisError::Toml(msg)) = Genesis::from_toml(&text) else { panic!("expected a TOML error") };
    assert!(msg.contains("chain_idd"), "{msg}");
    let text = base(&member("a", &pk(1), "\"bank\"", true)) + "colour = \"red\"\n";
    let Err(GenesisError::Toml(msg)) = Genesis::from_toml(&text) else { panic!("expected a TOML error") };
    assert!(msg.contains("colour"), "{msg}");
}

#[test]
fn duplicate_members_and_keys() {
    let text = base(&(member("a", &pk(1), "\"bank\"", true) + &member("a", &pk(2), "\"bank\"", true)));
    assert_eq!(invalid(&text), ("members[1].name".into(), "duplicate member name 'a'".into()));
    let text = base(&(member("a", &pk(1), "\"bank\"", true) + &member("b", &pk(1), "\"bank\"", true)));
    assert_eq!(invalid(&text).0, "members[1].public_key");
}

#[test]
fn bad_and_weak_keys_are_refused() {
    let (key, rule) = invalid(&base(&member("a", "abcd", "\"bank\"", true)));
    assert_eq!(key, "members[0].public_key");
    assert!(rule.contains("64 hexadecimal digits"), "{rule}");
    // The identity point: a small-order (weak) key.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let (key, rule) = invalid(&base(&member("a", &hex::encode(identity), "\"bank\"", true)));
    assert_eq!(key, "members[0].public_key");
    assert!(rule.contains("weak"), "{rule}");
    // A non-canonical encoding (y = p + 1 encodes the identity again).
    let mut noncanon = [0xffu8; 32];
    noncanon[0] = 0xee;
    noncanon[31] = 0x7f;
    let (key, _) = invalid(&base(&member("a", &hex::encode(noncanon), "\"bank\"", true)));
    assert_eq!(key, "members[0].public_key");
    // Not a point at all: find a y with no x.
    let not_a_point = (0u8..=255)
        .map(|b| [b; 32])
        .find(|k| {
            !credence_ledger::sig::PublicKey(*k).is_canonical()
                || credence_ledger::sig::VerifyingKey::new(&credence_ledger::sig::PublicKey(*k)).is_err()
        })
        .unwrap();
    assert_eq!(invalid(&base(&member("a", &hex::encode(not_a_point), "\"bank\"", true))).0, "members[0].public_key");
}

#[test]
fn every_field_rule_names_its_key() {
    let ok = member("a", &pk(1), "\"bank\"", true);
    let cases: Vec<(String, &str)> = vec![
        (base(&ok).replace("chain_id = \"t\"", "chain_id = \"\""), "chain_id"),
        (base(&ok).replace("credence.example/t", "has space"), "checkpoint_origin"),
        (base(&ok).replace("block_records_max = 1000", "block_records_max = 0"), "consensus.block_records_max"),
        (base(&ok).replace("block_bytes_max = 1048576", "block_bytes_max = 100"), "consensus.block_bytes_max"),
        (base(&ok).replace("timeout_prevote_ms = 500", "timeout_prevote_ms = 1"), "consensus.timeout_prevote_ms"),
        (base(&member("A", &pk(1), "\"bank\"", true)), "members[0].name"),
        (base(&member("a", &pk(1), "\"banker\"", true)), "members[0].roles[0]"),
        (base(&member("a", &pk(1), "\"bank\", \"bank\"", true)), "members[0].roles[1]"),
        (base(&member("a", &pk(1), "\"bank\"", false)), "members"),
        (base(""), "members"),
    ];
    for (text, key) in cases {
        assert_eq!(invalid(&text).0, key, "for {key}");
    }
}

#[test]
fn oversized_files_are_refused() {
    let text = base(&member("a", &pk(1), "\"bank\"", true)) + &"# padding\n".repeat(30_000);
    assert!(matches!(Genesis::from_toml(&text), Err(GenesisError::TooLarge { .. })));
}

#[test]
fn the_example_config_is_the_documented_fixture() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/genesis.toml");
    let g = Genesis::load(&path).unwrap();
    assert_eq!(g.validators().count(), 4);
    let (fixture, _) = credence_ledger::demo::genesis(1, credence_ledger::demo::EXAMPLE_GENESIS_TIME_MS).unwrap();
    assert_eq!(
        g, fixture,
        "configs/genesis.toml must equal `credence generate --seed 1`'s genesis at the example time"
    );
}

/// The `[time]` table: defaults when absent (and the old hash), stated values hashed
/// after the original encoding, each key's bounds named.
#[test]
fn the_time_table_is_optional_bounded_and_hashed_only_when_stated() {
    let members = member("val", &pk(1), "\"bank\"", true);
    let plain = Genesis::from_toml(&base(&members)).unwrap();
    assert_eq!(plain.time, credence_ledger::genesis::TimeParams::default());
    assert!(!plain.to_toml().contains("[time]"), "an unstated table is not written");
    let with = |t: &str| base(&format!("\n[time]\n{t}\n{members}"));
    let stated =
        Genesis::from_toml(&with("precision_ms = 500\nmessage_delay_ms = 3000\nheartbeat_ms = 60000")).unwrap();
    assert_eq!(stated.time, plain.time, "the defaults, stated");
    assert_ne!(stated.hash(), plain.hash(), "a stated table is part of the chain's identity");
    assert_eq!(Genesis::from_toml(&stated.to_toml()).unwrap(), stated);
    assert_eq!(Genesis::from_toml(&stated.to_toml()).unwrap().hash(), stated.hash());
    let other = Genesis::from_toml(&with("precision_ms = 500\nmessage_delay_ms = 3000\nheartbeat_ms = 0")).unwrap();
    assert_ne!(other.hash(), stated.hash());
    for (t, key) in [
        ("precision_ms = 0\nmessage_delay_ms = 3000\nheartbeat_ms = 0", "time.precision_ms"),
        ("precision_ms = 5\nmessage_delay_ms = 0\nheartbeat_ms = 0", "time.message_delay_ms"),
        ("precision_ms = 5\nmessage_delay_ms = 5\nheartbeat_ms = 999", "time.heartbeat_ms"),
    ] {
        assert_eq!(invalid(&with(t)).0, key);
    }
    assert!(matches!(Genesis::from_toml(&with("precision_ms = 5")), Err(GenesisError::Toml(_))), "all three keys");
}

/// PBTS timeliness, with overflow on either side refused.
#[test]
fn timeliness_follows_precision_and_the_growing_message_delay() {
    let t = credence_ledger::genesis::TimeParams { precision_ms: 100, message_delay_ms: 1000, heartbeat_ms: 0 };
    assert_eq!(t.message_delay_ms(0), 1000);
    assert_eq!(t.message_delay_ms(1), 1100);
    assert_eq!(t.message_delay_ms(2), 1210);
    assert_eq!(t.message_delay_ms(u32::MAX), t.message_delay_ms(64));
    let block = 1_000_000;
    assert!(t.timely(block, block, 0));
    assert!(t.timely(block, block - 100, 0), "at most precision early");
    assert!(!t.timely(block, block - 101, 0));
    assert!(t.timely(block, block + 1100, 0), "at most delay + precision late");
    assert!(!t.timely(block, block + 1101, 0));
    assert!(t.timely(block, block + 1200, 1), "the delay grows with the round");
    assert!(!t.timely(u64::MAX, block, 0), "a saturated proposer clock");
    assert!(!t.timely(block, u64::MAX, 0), "a saturated receiver clock");
    assert!(t.timely(0, 50, 0), "no underflow at time zero");
}

/// `[[witnesses]]`: optional, validated with errors naming the key, sorted by name, and hashed
/// (after the time parameters) only when stated, so a genesis without them keeps its hash.
#[test]
fn witnesses_are_optional_validated_and_hashed_only_when_stated() {
    let members = member("val", &pk(1), "\"bank\"", true);
    let plain = Genesis::from_toml(&base(&members)).unwrap();
    assert!(plain.witnesses.is_empty());
    assert!(!plain.to_toml().contains("witnesses"), "no table is written when none is stated");
    let witness = |name: &str, key: &str, url: &str| {
        format!("\n[[witnesses]]\nname = \"{name}\"\npublic_key = \"{key}\"\nurl = \"{url}\"\n")
    };
    let two = witness("w.example/zeta", &pk(9), "http://127.0.0.1:9001")
        + &witness("w.example/alpha", &pk(8), "http://127.0.0.1:9000/prefix");
    let g = Genesis::from_toml(&base(&format!("{members}{two}"))).unwrap();
    let names: Vec<&str> = g.witnesses.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["w.example/alpha", "w.example/zeta"], "sorted by name");
    assert_eq!(g.witness_keys()[0].key.0.to_vec(), hex::decode(pk(8)).unwrap());
    assert_ne!(g.hash(), plain.hash(), "named witnesses are part of the chain's identity");
    let again = Genesis::from_toml(&g.to_toml()).unwrap();
    assert_eq!(again, g);
    assert_eq!(again.hash(), g.hash());
    let swapped = Genesis::from_toml(&base(&format!(
        "{members}{}{}",
        witness("w.example/alpha", &pk(8), "http://127.0.0.1:9000/prefix"),
        witness("w.example/zeta", &pk(9), "http://127.0.0.1:9001")
    )))
    .unwrap();
    assert_eq!(swapped.hash(), g.hash(), "file order does not matter");
    let other_url = Genesis::from_toml(&base(&format!(
        "{members}{}{}",
        witness("w.example/alpha", &pk(8), "http://127.0.0.1:9000"),
        witness("w.example/zeta", &pk(9), "http://127.0.0.1:9001")
    )))
    .unwrap();
    assert_ne!(other_url.hash(), g.hash(), "every field is hashed");
    // The builder path gives the same genesis as the file.
    assert_eq!(plain.clone().with_witnesses(g.witnesses.clone()).unwrap(), g);

    let one = |name: &str, key: &str, url: &str| base(&format!("{members}{}", witness(name, key, url)));
    for (text, key) in [
        (one("w a", &pk(8), "http://h:1"), "witnesses[0].name"),
        (one("w+a", &pk(8), "http://h:1"), "witnesses[0].name"),
        (one("w", "00", "http://h:1"), "witnesses[0].public_key"),
        (one("w", &"00".repeat(32), "http://h:1"), "witnesses[0].public_key"),
        (one("w", &pk(8), "https://h:1"), "witnesses[0].url"),
        (one("w", &pk(8), "http://h:1/"), "witnesses[0].url"),
        (one("w", &pk(8), "http://"), "witnesses[0].url"),
        (
            base(&format!("{members}{}{}", witness("w", &pk(8), "http://h:1"), witness("w", &pk(7), "http://h:2"))),
            "witnesses[1].name",
        ),
        (
            base(&format!("{members}{}{}", witness("v", &pk(8), "http://h:1"), witness("w", &pk(8), "http://h:2"))),
            "witnesses[1].public_key",
        ),
    ] {
        assert_eq!(invalid(&text).0, key, "{text}");
    }
    let many: String = (0..=credence_ledger::genesis::WITNESSES_MAX)
        .map(|i| witness(&format!("w{i}"), &pk(10 + i as u8), "http://h:1"))
        .collect();
    assert_eq!(invalid(&base(&format!("{members}{many}"))).0, "witnesses");
}
