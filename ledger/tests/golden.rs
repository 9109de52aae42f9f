//! Golden vectors: fixed bytes and hashes for every signed or hashed structure, so any change to the format fails here (see docs/encoding.md).

use credence_ledger::attestation::{
    Attestation, AttestationBody, AttestationId, Claim, PatentPledge, PatentValuation, PledgeRelease, RdCategory,
    RdSpend, Revocation, ValuationMethod,
};
use credence_ledger::block::{BlockHeader, Leaf};
use credence_ledger::checkpoint;
use credence_ledger::genesis::Genesis;
use credence_ledger::hash::{Hash, HashOf};
use credence_ledger::ids::{Currency, Date, MemberName, Money, PatentNumber, Period, Uscc};
use credence_ledger::sig::SecretKey;
use credence_ledger::vote::{BlockId, Equivocation, Proposal, SignedStatement, Statement, Vote, VoteKind};

const GENESIS: &str = r#"
chain_id = "golden"
checkpoint_origin = "credence.example/golden"
genesis_time_ms = 1700000000000

[consensus]
block_records_max = 1000
block_bytes_max = 1048576
timeout_propose_ms = 1000
timeout_prevote_ms = 500
timeout_precommit_ms = 500
timeout_delta_ms = 250

[[members]]
name = "bank-a"
public_key = "PK_BANK"
roles = ["bank"]
validator = true

[[members]]
name = "centre-b"
public_key = "PK_CENTRE"
roles = ["service-centre", "appraiser"]
validator = true
"#;

fn key(n: u8) -> SecretKey {
    SecretKey::from_seed([n; 32])
}

fn genesis() -> Genesis {
    let text = GENESIS
        .replace("PK_BANK", &hex::encode(key(1).public().0))
        .replace("PK_CENTRE", &hex::encode(key(2).public().0));
    Genesis::from_toml(&text).unwrap()
}

fn name(s: &str) -> MemberName {
    MemberName::parse("name", s).unwrap()
}

fn cny(fen: u64) -> Money {
    Money { fen, currency: Currency::CNY }
}

fn body(attester: &str, sequence: u64, claim: Claim) -> AttestationBody {
    AttestationBody { attester: name(attester), sequence, issued_at_ms: 1_700_000_123_456, claim }
}

fn id(n: u8) -> AttestationId {
    HashOf::from_hash(Hash([n; 32]))
}

/// (name, body) for one record of every kind.
fn bodies() -> Vec<(&'static str, AttestationBody)> {
    let uscc = Uscc::parse("enterprise", "914403001922038216").unwrap();
    let patent = PatentNumber::parse("patent", "CN200310102344.5").unwrap();
    vec![
        (
            "rd-spend",
            body(
                "centre-b",
                1,
                Claim::RdSpend(RdSpend {
                    enterprise: uscc,
                    period: Period::parse("period", "2024Q3").unwrap(),
                    amount: cny(125_000_000),
                    category: RdCategory::Personnel,
                    evidence: Hash([0xee; 32]),
                }),
            ),
        ),
        (
            "patent-valuation",
            body(
                "centre-b",
                2,
                Claim::PatentValuation(PatentValuation {
                    patent,
                    owner: uscc,
                    value: cny(880_000_000),
                    method: ValuationMethod::Income,
                    valuation_date: Date::parse("d", "2024-02-29").unwrap(),
                    valid_until: Date::parse("d", "2025-02-28").unwrap(),
                    evidence: Hash([0xdd; 32]),
                }),
            ),
        ),
        (
            "pledge",
            body(
                "bank-a",
                1,
                Claim::PatentPledge(PatentPledge {
                    patent,
                    pledgor: uscc,
                    pledgee: name("bank-a"),
                    secured: cny(500_000_000),
                    start: Date::parse("d", "2024-03-01").unwrap(),
                    term_months: 24,
                    evidence: Hash([0xcc; 32]),
                }),
            ),
        ),
        ("release", body("bank-a", 2, Claim::PledgeRelease(PledgeRelease { pledge: id(0x11) }))),
        (
            "revoke",
            body("centre-b", 3, Claim::Revocation(Revocation { target: id(0x22), superseded_by: Some(id(0x33)) })),
        ),
        ("equivocation", body("bank-a", 3, Claim::Equivocation(Box::new(vote_equivocation())))),
        ("equivocation-proposal", body("bank-a", 4, Claim::Equivocation(Box::new(proposal_equivocation())))),
    ]
}

fn block_id(n: u8) -> BlockId {
    BlockId { hash: HashOf::from_hash(Hash([n; 32])), tree_size: 1, root: Hash([n + 1; 32]) }
}

/// `centre-b` prevoted nil and for a block at height 1, round 0 (signed under the golden genesis).
fn vote_equivocation() -> Equivocation {
    let g = genesis();
    let nil = Vote { height: 1, round: 0, kind: VoteKind::Prevote, value: None };
    let block = Vote { value: Some(block_id(0x44)), ..nil };
    let signed = |v: Vote| SignedStatement {
        statement: Statement::Vote(v),
        signature: v.sign(&g.checkpoint_origin, &g.hash(), "centre-b", &key(2)),
    };
    Equivocation::new(name("centre-b"), signed(nil), signed(block)).unwrap()
}

/// `centre-b` proposed two blocks at height 2, round 1.
fn proposal_equivocation() -> Equivocation {
    let g = genesis();
    let a = Proposal { height: 2, round: 1, block: block_id(0x66), valid_round: None };
    let b = Proposal { block: block_id(0x77), valid_round: Some(0), ..a };
    let signed =
        |p: Proposal| SignedStatement { statement: Statement::Proposal(p), signature: p.sign(&g.hash(), &key(2)) };
    Equivocation::new(name("centre-b"), signed(a), signed(b)).unwrap()
}

/// Expected (name, hex of body bytes, id, hex of signature) — from docs/encoding.md.
const EXPECTED: &[(&str, &str, &str, &str)] = &[
    (
        "rd-spend",
        "080000000000000063656e7472652d620100000000000000404ae7cf8b01000000000000393134343033303031393232303338323136e807034059730700000000434e5901000000eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
        "d2a3269b9f9880b29cdc2913b4b0c876f16c73a2d8a0f807d0209148a4563ffc",
        "bb5c713d6f497b08d3e257fb368be6f8e015b1e281b796d2ae55f3519e2eaac1089039a2bd80a56e6f566ebed21566b6a0a1c022e6e6bcf48da8ba9bd1a8a60e",
    ),
    (
        "patent-valuation",
        "080000000000000063656e7472652d620200000000000000404ae7cf8b010000010000003230303331303130323334343539313434303330303139323230333832313600bc733400000000434e590000000065d7340174fe3401dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
        "e641d524bb9200bea07071f7a8b8e7631f90f6f2643d85eeff25f38fdbd5f344",
        "772a3c40d629a8edf586f5da50cf8b0cfdc261eb2cec5d24399601025fb78c5cfa947e5a7040bebe1760d71d368787b91ce8beb681ef3e61c6daeec6cda67f05",
    ),
    (
        "pledge",
        "060000000000000062616e6b2d610100000000000000404ae7cf8b0100000200000032303033313031303233343435393134343033303031393232303338323136060000000000000062616e6b2d610065cd1d00000000434e59add734011800cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
        "67912774f8d2a2049b21180ec9ad17ec5fb8cb7211eac0d401ceabbefbb7932c",
        "ccb7a1c825b8ab1563c5fa55e17ab1655abb0b84f21bceaac06b9d5e2aa9981d117f55f17a58d2a562ba7f502b438f5e5cbf161e9613e9203b691b2977192609",
    ),
    (
        "release",
        "060000000000000062616e6b2d610200000000000000404ae7cf8b010000030000001111111111111111111111111111111111111111111111111111111111111111",
        "2938cb435eb780af9ddb373075a35e51197dff04912d53fd542ed0652f899260",
        "e90e29e905f99ff0ecb60a1a4e7405bacca659e6a8cd636f925f80aa4fbbaca5f37d88c61eaf9d8da6950785df27b0b7fde67076a9d029690ebdc8d76f134002",
    ),
    (
        "revoke",
        "080000000000000063656e7472652d620300000000000000404ae7cf8b010000040000002222222222222222222222222222222222222222222222222222222222222222013333333333333333333333333333333333333333333333333333333333333333",
        "de85df1c814ac51d6ae045573f98f5a21df10b0fce878e1fce3fd463608f8706",
        "17c6410bc0418d52d04c97dfa7bc3cf8aca27047df6080fe51722c37fafb2413109c081a0967e7ec08a09ffdafa4e593bff1b239e119152806435dd3a6a92005",
    ),
    (
        "equivocation",
        "060000000000000062616e6b2d610300000000000000404ae7cf8b01000005000000080000000000000063656e7472652d62000000000100000000000000000000000000000000496f1a1ede2754dd5ddc6009491921c4034327496cb657c5b4eefc52ae78eb0d2222d3822343e6aca8591c4ede8668b4a63499abd18346d09bb527b5393b9907000000000100000000000000000000000000000001444444444444444444444444444444444444444444444444444444444444444401000000000000004545454545454545454545454545454545454545454545454545454545454545bff7623561f7a9ff4d62fef050bb1933484e10dac8262c4a5f5aa072038848adc0e64c3b2fa9b5b8f28bd68b13808c7b6cd7ad9541ce5c6a8e9072cd4e77c10c",
        "2cfcbcb710eadc28019c217b57258ac0e0dd43430d0f02443d42268b9204d172",
        "c2979253c5ee6125bc6fc7d8bd25e426eb0d418e104b18ef52afebc87db4d39ae6a54e19dd19528c523f029467ce9b36ee878ea92ee9b763353a8afcc86fdf0a",
    ),
    (
        "equivocation-proposal",
        "060000000000000062616e6b2d610400000000000000404ae7cf8b01000005000000080000000000000063656e7472652d6201000000020000000000000001000000666666666666666666666666666666666666666666666666666666666666666601000000000000006767676767676767676767676767676767676767676767676767676767676767005484d6d40ce5c1e7a3ba4b7bce98ee278556865120e5487ef3c7475f47d6f2812fdac2fd5296613b8f7b3c20d9bcbd1d9ee8f45bd2af353e9789f5b0b2ce2802010000000200000000000000010000007777777777777777777777777777777777777777777777777777777777777777010000000000000078787878787878787878787878787878787878787878787878787878787878780100000000352d033c7c03dbd88bba838d4872fe3c3ca449523a3ba40c22f0e0dcad888942bf6e2a7929c6a164eeed91bf12ec1bcc1226222fb4c125bc4e414d08d9549a05",
        "7ee626f6390e05e0117463f70d6bca037e3cc7e6dadcb48fa09536fc7d53b076",
        "9215050b3f65bf78be5642b1f3234e343ee78cf4765d95b97e8f67e8fced1180772b44002f61d0ba28248ca03f85d447220f53078df3f9e9b5c430aeb656cf00",
    ),
];
const GENESIS_HASH: &str = "866e96d5868ab8ba4ae0efb11a728a0b32be66dbcd7a2ec93bc0dff74c3dad40";
const VALIDATOR_SET_HASH: &str = "ada49822d04a961ee4eb020298866bd31f2fd14724c7737df9ae01df311d6dbe";
const HEADER_HEX: &str = "0100000000000000866e96d5868ab8ba4ae0efb11a728a0b32be66dbcd7a2ec93bc0dff74c3dad404075e8cf8b010000060000000000000062616e6b2d610100000000000000a472aceb84ff888f501c90c6598a5b5f450627f8606031c78437120c43315b0eada49822d04a961ee4eb020298866bd31f2fd14724c7737df9ae01df311d6dbe";
const HEADER_HASH: &str = "620e2987afa6f97057fad0097572014f8f005f8363899ba63f636eb6120329df";
const LEAF_HASH_RD: &str = "a472aceb84ff888f501c90c6598a5b5f450627f8606031c78437120c43315b0e";
const CHECKPOINT_NOTE: &str = "credence.example/golden\n1\npHKs64T/iI9QHJDGWYpbX0UGJ/hgYDHHhDcSDEMxWw4=\ncredence height=1 round=0 block=620e2987afa6f97057fad0097572014f8f005f8363899ba63f636eb6120329df\n\n— bank-a x7rkz7bQeQZnPGcYCEU54Ag5L+DLvKbioFJ/vVhu+izFsRrbOrIyX7pArW6Wh8NHb4JEyaKI99rQg0z5938Tn1/hyA8=\n— centre-b icRQilSjcpkKGifuGpn5T2pbh2cdCtZgBCK7+zCseVbKxeev8bl+ZkXLFjHg8pgnWQ0ashc6+6ndWIoG5I5813rKrg8=\n";

#[test]
fn golden_vectors() {
    let g = genesis();
    let chain = g.hash();
    let mut got = Vec::new();
    for (kind, b) in bodies() {
        let signer = if b.attester.as_str() == "bank-a" { key(1) } else { key(2) };
        let a: Attestation = b.clone().sign(&signer, &chain);
        got.push((kind, hex::encode(b.to_bytes()), a.id().to_string(), hex::encode(a.signature.0)));
        // Decoding the leaf bytes gives back the same record, and ids agree.
        let leaf = Leaf::from_bytes(a.to_bytes()).unwrap();
        assert_eq!(leaf.attestation, a);
        assert_eq!(leaf.id, b.id());
        assert_eq!(leaf.body_bytes(), b.to_bytes());
    }
    // The evidence vectors prove real offences under the golden genesis.
    assert_eq!(vote_equivocation().check(&g.governance(), &g.checkpoint_origin, &chain), Ok(()));
    assert_eq!(proposal_equivocation().check(&g.governance(), &g.checkpoint_origin, &chain), Ok(()));
    let rd = Leaf::new(bodies()[0].1.clone().sign(&key(2), &chain));
    let header = BlockHeader {
        height: 1,
        prev: HashOf::from_hash(chain),
        time_ms: 1_700_000_200_000,
        proposer: name("bank-a"),
        tree_size: 1,
        tree_root: Hash(rd.leaf_hash()),
        validator_set: g.validator_set_hash(),
    };
    let body = header.checkpoint_body(&g, 0);
    let cp = checkpoint::Checkpoint {
        signatures: vec![checkpoint::sign(&body, "bank-a", &key(1)), checkpoint::sign(&body, "centre-b", &key(2))],
        body,
    };
    let actual = format!(
        "EXPECTED = {got:#?}\nGENESIS_HASH = {}\nVALIDATOR_SET_HASH = {}\nHEADER_HEX = {}\nHEADER_HASH = {}\nLEAF_HASH_RD = {}\nCHECKPOINT_NOTE = {:?}",
        chain,
        g.validator_set_hash(),
        hex::encode(header.to_bytes()),
        header.hash(),
        hex::encode(rd.leaf_hash()),
        cp.to_note()
    );
    let expected_got: Vec<(&str, String, String, String)> =
        EXPECTED.iter().map(|(k, b, i, s)| (*k, b.to_string(), i.to_string(), s.to_string())).collect();
    assert!(
        expected_got == got
            && GENESIS_HASH == chain.to_string()
            && VALIDATOR_SET_HASH == g.validator_set_hash().to_string()
            && HEADER_HEX == hex::encode(header.to_bytes())
            && HEADER_HASH == header.hash().to_string()
            && LEAF_HASH_RD == hex::encode(rd.leaf_hash())
            && CHECKPOINT_NOTE == cp.to_note(),
        "the encoding changed; if on purpose, update docs/encoding.md and these vectors:\n{actual}"
    );
}
