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

/// Signs each body (bank-a with key 1, others with key 2) under the golden genesis, checks that
/// its leaf decodes back to it with its body bytes and that its fields pass their rules, and
/// gives one (kind, body hex, id) row per body, to compare with a table of expected rows.
fn signed_rows(bodies: Vec<(&'static str, AttestationBody)>) -> Vec<(&'static str, String, String)> {
    let chain = genesis().hash();
    let mut got = Vec::new();
    for (kind, b) in bodies {
        let signer = if b.attester.as_str() == "bank-a" { key(1) } else { key(2) };
        let a: Attestation = b.clone().sign(&signer, &chain);
        let leaf = Leaf::from_bytes(a.to_bytes()).unwrap();
        assert_eq!(leaf.attestation, a);
        assert_eq!(leaf.body_bytes(), b.to_bytes());
        assert_eq!(b.claim.check_fields(), Ok(()), "{kind}");
        got.push((kind, hex::encode(b.to_bytes()), a.id().to_string()));
    }
    got
}

/// A table of expected (kind, body hex, id) rows in the form [`signed_rows`] gives.
fn expected_rows(table: &[(&'static str, &str, &str)]) -> Vec<(&'static str, String, String)> {
    table.iter().map(|(k, b, i)| (*k, b.to_string(), i.to_string())).collect()
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
                    amount: cny(125_000_000).into(),
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
                    value: cny(880_000_000).into(),
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
                    secured: cny(500_000_000).into(),
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
        "080000000000000063656e7472652d620100000000000000404ae7cf8b01000000000000393134343033303031393232303338323136e80703004059730700000000434e5901000000eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
        "47f4972cfdf62f827601552536794036dbc3b7e6bd7e8fdb927c4b1aaeb79470",
        "de8d80b341b22994cb5ad4fedb981119e93a6507c15314b0508b53d4f6eb79268c79278afc77d8ee2000b6c8dbc8a0b9d342550a2a92623fbc5fbba0556d240b",
    ),
    (
        "patent-valuation",
        "080000000000000063656e7472652d620200000000000000404ae7cf8b01000001000000323030333130313032333434353931343430333030313932323033383231360000bc733400000000434e590000000065d7340174fe3401dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
        "b8aebb6b5f43b7d5fef2e89e417e3a6c59652458444400e22eac5ac2190f8cff",
        "166918012cff70b0ff846a5c58a4e4ddae5c690fe36ebc1dc721bd048510b672da94236f533fb9d1cfc8fd0283fec4e463819dfc99723cace5121d1fc366d906",
    ),
    (
        "pledge",
        "060000000000000062616e6b2d610100000000000000404ae7cf8b0100000200000032303033313031303233343435393134343033303031393232303338323136060000000000000062616e6b2d61000065cd1d00000000434e59add734011800cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
        "7c73e1ce5a572a933fac3f3c966ad842edd9e567be7bc3cceb73d89d616005c3",
        "c4fee27cffc8d82b71582829799d0701087a1687dce2abbd65957323735bb1e0534cb6ba34b6ce6509e266cc2608cb3861d606df0015675893c9ad64aa834b08",
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
const HEADER_HEX: &str = "0100000000000000866e96d5868ab8ba4ae0efb11a728a0b32be66dbcd7a2ec93bc0dff74c3dad404075e8cf8b010000060000000000000062616e6b2d6101000000000000004a8e8c24698723e907230944141a102f384a5bb95328e5f7db256c510a120802ada49822d04a961ee4eb020298866bd31f2fd14724c7737df9ae01df311d6dbe";
const HEADER_HASH: &str = "9b0d89d30a6d8f9d43bd16b599445c255440ccc68d5c7fa4084be4e31cba9c16";
const LEAF_HASH_RD: &str = "4a8e8c24698723e907230944141a102f384a5bb95328e5f7db256c510a120802";
const CHECKPOINT_NOTE: &str = "credence.example/golden\n1\nSo6MJGmHI+kHIwlEFBoQLzhKW7lTKOX32yVsUQoSCAI=\ncredence height=1 round=0 block=9b0d89d30a6d8f9d43bd16b599445c255440ccc68d5c7fa4084be4e31cba9c16\n\n— bank-a x7rkz1Y0xK7PDWwOR+x/YRiVMAGpHWCP8aziptBTOzkNDFjZWsUWnNJpA2xYhb7sBv6axuCMmXE1RQzydjY0eDRJyQM=\n— centre-b icRQiqCzYAE6qRL7YoyuacABw8uXvOO38KA1i516zfqsjE9KmorwRDXNCupwaNM6/JIsSslJ57mvvUMvbPTwClz4eA8=\n";

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

// ==== BEGIN loan-lifecycle golden vectors (tags 6..=13; issue 13) ====
// The integrator may renumber these tags when merging other appended kinds; then
// regenerate this block (the assertion prints the new values).

mod loan_lifecycle {
    use super::*;
    use credence_ledger::cn_ids::{HnteCertificate, PatentRef, PledgeRegistration, PublicationNumber};
    use credence_ledger::loans::{
        Appraisal, AppraisalPurpose, Collateral, Disposal, DisposalMethod, Enrolment, IpPledge, Loan, LoanClass,
        LoanEvent, LoanEventKind, PatentStatus, PledgeRegistered, PledgeReserve, PoolTerms, Qualification,
        QualificationKind, RiskPool, ValueType,
    };

    fn d(s: &str) -> Date {
        Date::parse("d", s).unwrap()
    }

    pub(super) fn bodies() -> Vec<(&'static str, AttestationBody)> {
        let uscc = Uscc::parse("enterprise", "914403001922038216").unwrap();
        let patent = PatentRef::parse("patent", "CN99100001.3").unwrap();
        vec![
            (
                "ip-pledge/reserve",
                body(
                    "bank-a",
                    10,
                    Claim::IpPledge(IpPledge::Reserve(PledgeReserve {
                        patent,
                        pledgor: uscc,
                        pledgee: name("bank-a"),
                        loan_contract: Hash([0xc1; 32]),
                        secured: cny(500_000_000).into(),
                        start: d("2025-03-01"),
                        end: d("2027-02-28"),
                        evidence: Hash([0xcc; 32]),
                    })),
                ),
            ),
            (
                "ip-pledge/registered",
                body(
                    "bank-a",
                    11,
                    Claim::IpPledge(IpPledge::Registered(PledgeRegistered {
                        pledge: id(0x11),
                        registration: PledgeRegistration::parse("r", "Y2025980000123").unwrap(),
                        effective: d("2025-03-05"),
                        evidence: Hash([0xab; 32]),
                    })),
                ),
            ),
            (
                "patent-status",
                body(
                    "centre-b",
                    10,
                    Claim::PatentStatus(PatentStatus {
                        patent,
                        owner: uscc,
                        co_owners: vec![],
                        grant: Some(PublicationNumber::parse("g", "CN1234567C").unwrap()),
                        filed: d("1999-05-04"),
                        expires: d("2019-05-03"),
                        fees_paid_until: Some(d("2018-05-03")),
                        invalidation_pending: false,
                        court_preservation: true,
                        lapsed: false,
                        as_of: d("2018-01-02"),
                        evidence: Hash([0xee; 32]),
                    }),
                ),
            ),
            (
                "appraisal",
                body(
                    "centre-b",
                    11,
                    Claim::Appraisal(Appraisal {
                        patent,
                        owner: uscc,
                        institution: Uscc::parse("i", "91330100716105852F").unwrap(),
                        purpose: AppraisalPurpose::Pledge,
                        value_type: ValueType::Realisable,
                        value: cny(880_000_000),
                        method: ValuationMethod::Income,
                        rationale: "royalties".into(),
                        base_date: d("2025-01-01"),
                        valid_until: d("2025-12-31"),
                        evidence: Hash([0xdd; 32]),
                    }),
                ),
            ),
            (
                "loan",
                body(
                    "bank-a",
                    12,
                    Claim::Loan(Loan {
                        lender: name("bank-a"),
                        borrower: uscc,
                        contract: Hash([0xc1; 32]),
                        principal: cny(500_000_000),
                        start: d("2025-03-01"),
                        maturity: d("2026-02-28"),
                        rate_bp: 385,
                        collateral: vec![Collateral { pledge: id(0x11), appraisal: id(0x22), share_bp: 10_000 }],
                        guarantee: None,
                    }),
                ),
            ),
            (
                "loan-event/classification",
                body(
                    "bank-a",
                    13,
                    Claim::LoanEvent(LoanEvent {
                        loan: id(0x33),
                        date: d("2025-09-30"),
                        event: LoanEventKind::Classification { class: LoanClass::Substandard, days_overdue: 95 },
                    }),
                ),
            ),
            (
                "risk-pool/open",
                body(
                    "centre-b",
                    12,
                    Claim::RiskPool(RiskPool::Open(PoolTerms {
                        name: "SZ IP pool".into(),
                        currency: Currency::CNY,
                        pool_bp: 4_000,
                        bank_bp: 3_000,
                        guarantor_bp: 2_000,
                        insurer_bp: 1_000,
                        loan_cap: cny(150_000_000),
                        enrol_from: d("2025-01-01"),
                        enrol_until: d("2025-12-31"),
                        claim_days: 180,
                        default_days_min: 90,
                    })),
                ),
            ),
            (
                "risk-pool/enrol",
                body(
                    "centre-b",
                    13,
                    Claim::RiskPool(RiskPool::Enrol(Enrolment {
                        pool: id(0x44),
                        loan: id(0x33),
                        date: d("2025-03-10"),
                    })),
                ),
            ),
            (
                "disposal",
                body(
                    "bank-a",
                    14,
                    Claim::Disposal(Disposal {
                        pledge: id(0x11),
                        method: DisposalMethod::Sale,
                        court_case: None,
                        price: cny(200_000_000),
                        date: d("2026-06-01"),
                        new_owner: Some(Uscc::parse("o", "91440300708461136T").unwrap()),
                        evidence: Hash([0x55; 32]),
                    }),
                ),
            ),
            (
                "qualification",
                body(
                    "centre-b",
                    14,
                    Claim::Qualification(Qualification {
                        enterprise: uscc,
                        qualification: QualificationKind::HighTech {
                            certificate: HnteCertificate::parse("c", "GR202444000123").unwrap(),
                            issued: d("2024-12-01"),
                        },
                        evidence: Hash([0x66; 32]),
                    }),
                ),
            ),
        ]
    }

    /// (name, hex of body bytes, id).
    const EXPECTED: &[(&str, &str, &str)] = &[
        (
            "ip-pledge/reserve",
            "060000000000000062616e6b2d610a00000000000000404ae7cf8b010000060000000000000001000000393931303030303133393134343033303031393232303338323136060000000000000062616e6b2d61c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1000065cd1d00000000434e59bdfe3401944c3501cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc",
            "be7bb094251f2dfbfac6825ecca6f45ad20e2feb5bb42a479490c976c55aebb6",
        ),
        (
            "ip-pledge/registered",
            "060000000000000062616e6b2d610b00000000000000404ae7cf8b010000060000000100000011111111111111111111111111111111111111111111111111111111111111110e000000000000005932303235393830303030313233c1fe3401abababababababababababababababababababababababababababababababab",
            "50889c70c0a5be44e6c1c56a518bb7ccfdddbf907b8e3ac6dfa7c7c90d06a1e5",
        ),
        (
            "patent-status",
            "080000000000000063656e7472652d620a00000000000000404ae7cf8b010000070000000100000039393130303030313339313434303330303139323230333832313600000000000000000187d6120043e8073101271534010117ee330100010086ec3301eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
            "329f4ffa6e06a51c9ce583ccea25accaf21a84a9b699a397b5577d60cf57596e",
        ),
        (
            "appraisal",
            "080000000000000063656e7472652d620b00000000000000404ae7cf8b0100000800000001000000393931303030303133393134343033303031393232303338323136393133333031303037313631303538353246000000000100000000bc733400000000434e59000000000900000000000000726f79616c74696573f5fd34015f023501dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd",
            "1de283b5628a54b1c6c5cf575a79cd505e75c615436804ab841816f6c9427708",
        ),
        (
            "loan",
            "060000000000000062616e6b2d610c00000000000000404ae7cf8b01000009000000060000000000000062616e6b2d61393134343033303031393232303338323136c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c10065cd1d00000000434e59bdfe34018425350181010000010000000000000011111111111111111111111111111111111111111111111111111111111111112222222222222222222222222222222222222222222222222222222222222222102700",
            "5fe2aeaf4d44e1271d4932292b5b3f70738c68a0ec1091828a1d98542944a305",
        ),
        (
            "loan-event/classification",
            "060000000000000062616e6b2d610d00000000000000404ae7cf8b0100000a00000033333333333333333333333333333333333333333333333333333333333333333201350101000000020000005f000000",
            "69297f385734a63c60de64b15dd59d098597e359c9f3ec130a9b0f6bf0084996",
        ),
        (
            "risk-pool/open",
            "080000000000000063656e7472652d620c00000000000000404ae7cf8b0100000b000000000000000a00000000000000535a20495020706f6f6c434e59a00fb80bd007e80380d1f00800000000434e59f5fd34015f023501b4005a00",
            "85811d761b0dda6b338e0a564ce111973e209a2e89aecfccb100310940d680d6",
        ),
        (
            "risk-pool/enrol",
            "080000000000000063656e7472652d620d00000000000000404ae7cf8b0100000b0000000100000044444444444444444444444444444444444444444444444444444444444444443333333333333333333333333333333333333333333333333333333333333333c6fe3401",
            "65f850549df2fe5e80f9f16cceb91d13290b96e6e0d1bac321c92ac3445aaf85",
        ),
        (
            "disposal",
            "060000000000000062616e6b2d610e00000000000000404ae7cf8b0100000c0000001111111111111111111111111111111111111111111111111111111111111111020000000000c2eb0b00000000434e59f9263501013931343430333030373038343631313336545555555555555555555555555555555555555555555555555555555555555555",
            "0e9c1e16538786e7c41af69cfe4655c19b9698ae8fbe08300d2165ec0d8f5664",
        ),
        (
            "qualification",
            "080000000000000063656e7472652d620e00000000000000404ae7cf8b0100000d000000393134343033303031393232303338323136000000000e00000000000000475232303234343430303031323331db34016666666666666666666666666666666666666666666666666666666666666666",
            "84da9caa8335b3babfc01f436b0092d6aa94033e8b50ec6443cf8827a386ffd2",
        ),
    ];

    #[test]
    fn loan_lifecycle_golden_vectors() {
        let got = signed_rows(bodies());
        assert!(
            expected_rows(EXPECTED) == got,
            "the loan-lifecycle encoding changed; update docs/encoding.md and:\n{got:#?}"
        );
    }
}
// ==== END loan-lifecycle golden vectors ====

// ---------------------------------------------------------------------------------------------
// Access records (issue 12): Claim tags 14..=16. One block, so the integrator can renumber it.
// ---------------------------------------------------------------------------------------------

mod access {
    use super::*;
    use credence_ledger::access::{AccessKeyGrant, Consent, FactKind, Purpose, QueryRecord, ReadKind, Scope};

    fn bodies() -> Vec<(&'static str, AttestationBody)> {
        let uscc = Uscc::parse("enterprise", "914403001922038216").unwrap();
        vec![
            (
                "access-key",
                body(
                    "bank-a",
                    5,
                    Claim::AccessKey(AccessKeyGrant {
                        holder: "loan-officer-zhang".into(),
                        key: key(9).public(),
                        scopes: vec![Scope::Member, Scope::Restricted],
                        expires_at_ms: 1_731_536_123_456,
                    }),
                ),
            ),
            (
                "consent",
                body(
                    "bank-a",
                    6,
                    Claim::Consent(Consent {
                        enterprise: uscc,
                        recipient: name("bank-a"),
                        purpose: Purpose::LoanApplication,
                        scope: vec![FactKind::RdSpend, FactKind::PatentValuation, FactKind::PatentPledge],
                        expires_at_ms: 1_731_536_123_456,
                        evidence: Hash([0xaa; 32]),
                    }),
                ),
            ),
            (
                "query",
                body(
                    "centre-b",
                    4,
                    Claim::Query(QueryRecord {
                        reader: name("bank-a"),
                        access_key: id(0x55),
                        enterprise: uscc,
                        purpose: Purpose::LoanApplication,
                        consent: Some(id(0x66)),
                        read: ReadKind::Facts,
                    }),
                ),
            ),
        ]
    }

    /// (name, hex of body bytes, id, hex of signature) — from docs/encoding.md §11.
    const EXPECTED: &[(&str, &str, &str, &str)] = &[
        (
            "access-key",
            "060000000000000062616e6b2d610500000000000000404ae7cf8b0100000e00000012000000000000006c6f616e2d6f6666696365722d7a68616e67fd1724385aa0c75b64fb78cd602fa1d991fdebf76b13c58ed702eac835e9f618020000000000000000000000010000004076982793010000",
            "15d710df5b0d884ff69081a290bbbc60331b5acd78474083885a658903edf293",
            "bf92d6e66a81b22527cbacca64c5bd4075361c399b4d7f78c95b46ed08af34f903f4d30486655e2241c3cb6ba891c01ebdc5d6d98a3ea316fce1c37672dd1603",
        ),
        (
            "consent",
            "060000000000000062616e6b2d610600000000000000404ae7cf8b0100000f000000393134343033303031393232303338323136060000000000000062616e6b2d610000000003000000000000000000000001000000020000004076982793010000aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "9897b7b84c399888f3f13aeb57b467192eb614188e9df7c5d8a45e9df603ec8b",
            "0b3dda290214f973beed62c05acac934afcd3356dd336b902189829b2694c4ab06f538fcaf0ae7162875b3dcb361d79f32fd5ae3222140b818b4b6be14ed2b0b",
        ),
        (
            "query",
            "080000000000000063656e7472652d620400000000000000404ae7cf8b01000010000000060000000000000062616e6b2d6155555555555555555555555555555555555555555555555555555555555555553931343430333030313932323033383231360000000001666666666666666666666666666666666666666666666666666666666666666600000000",
            "9df573a111ccd97667ee219e075702ed57c764724e7b928d8d5a53b50e453b3f",
            "b5ce584f19c060f691b66b3faf4ca41d2b294eabd4bcf2fbfc020423f388b02ad21db8b0ef16bac40837f341af61ff850ceea8de7a81ef0cf8eaa955d4228e0e",
        ),
    ];

    #[test]
    fn golden_vectors_access() {
        let chain = genesis().hash();
        let mut got = Vec::new();
        for (kind, b) in bodies() {
            let signer = if b.attester.as_str() == "bank-a" { key(1) } else { key(2) };
            let a: Attestation = b.clone().sign(&signer, &chain);
            got.push((kind, hex::encode(b.to_bytes()), a.id().to_string(), hex::encode(a.signature.0)));
            let leaf = Leaf::from_bytes(a.to_bytes()).unwrap();
            assert_eq!(leaf.attestation, a);
        }
        let expected: Vec<(&str, String, String, String)> =
            EXPECTED.iter().map(|(k, b, i, s)| (*k, b.to_string(), i.to_string(), s.to_string())).collect();
        assert!(
            expected == got,
            "the access encoding changed; if on purpose, update docs/encoding.md §11 and:\n{got:#?}"
        );
    }

    /// The appended read kinds carry their number after their tag: `ReadKind::Block` (tag 2)
    /// its height, `ReadKind::EntryBundle` (tag 3) its index, `ReadKind::Portfolio` (tag 4) its
    /// height; the other read kinds keep their bytes, so the query vector above is unchanged.
    #[test]
    fn appended_read_kinds_encode_their_tag_then_their_number() {
        let cases = [
            (ReadKind::Block { height: 300 }, "020000002c01000000000000"),
            (ReadKind::EntryBundle { index: 7 }, "030000000700000000000000"),
            (ReadKind::Portfolio { height: 0x0102 }, "040000000201000000000000"),
        ];
        for (read, tail) in cases {
            let (_, mut b) = bodies().into_iter().nth(2).unwrap();
            let facts = hex::encode(b.to_bytes());
            let Claim::Query(q) = &mut b.claim else { unreachable!() };
            q.read = read;
            assert_eq!(hex::encode(b.to_bytes()), format!("{}{tail}", facts.strip_suffix("00000000").unwrap()));
            let leaf = Leaf::from_bytes(b.sign(&key(2), &genesis().hash()).to_bytes()).unwrap();
            assert!(matches!(&leaf.attestation.body.claim, Claim::Query(q) if q.read == read), "{read:?}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Confidential amounts (docs/encoding.md §13): the rd-spend of `bodies()` with its amount sealed.
// ---------------------------------------------------------------------------------------------

mod sealed {
    use super::*;
    use credence_ledger::confidential::{Amount, Opening};

    /// Body hex and id of the sealed rd-spend (salt `5a`×32), from docs/encoding.md §13.
    const SEALED_BODY: &str = "080000000000000063656e7472652d620100000000000000404ae7cf8b01000000000000393134343033303031393232303338323136e8070301434e5927b418f59945905db445ebbef52c1d2a9b74a530cf028a4e6691d146d7ba04c401000000eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
    const SEALED_ID: &str = "47d9e28871f91967e87328c49d0529bdafafc3e998d6046dfd65ad051c222a48";

    #[test]
    fn sealed_rd_spend_golden_vector() {
        let (_, mut b) = bodies().into_iter().next().unwrap();
        let Claim::RdSpend(r) = &mut b.claim else { unreachable!() };
        let (sealed, opening) = Amount::seal("rd-spend.amount", cny(125_000_000), [0x5a; 32]);
        r.amount = sealed;
        let got = (hex::encode(b.to_bytes()), b.id().to_string());
        assert_eq!((SEALED_BODY.to_string(), SEALED_ID.to_string()), got, "the sealed encoding changed");
        // The plain body and the sealed one differ only in the amount: form 00 + money → form 01 + currency + commitment.
        let plain = hex::encode(bodies()[0].1.to_bytes());
        let (pre, post) = plain.split_once("004059730700000000434e59").unwrap();
        let commitment = "27b418f59945905db445ebbef52c1d2a9b74a530cf028a4e6691d146d7ba04c4";
        assert_eq!(got.0, format!("{pre}01434e59{commitment}{post}"));
        assert_eq!(opening, Opening { field: "rd-spend.amount".into(), salt: [0x5a; 32], fen: 125_000_000 });
        // Decodes, passes the field rules, and is signed like any other body.
        let a = b.sign(&key(2), &genesis().hash());
        assert_eq!(Attestation::from_bytes(&a.to_bytes()).unwrap(), a);
    }
}

// ==== BEGIN governance golden vectors (tags 17..=19; issue 11) ====
// The integrator may renumber the tags when merging other appended kinds: then
// regenerate this block (the assertion prints the new values) and docs/encoding.md §12.
mod governance {
    use super::*;
    use credence_ledger::attestation::{GovernanceApproval, GovernanceProposal, KeyRotation};
    use credence_ledger::genesis::{ConsensusParams, Role};
    use credence_ledger::governance::{self, Change, MemberKey};

    const EXPIRES_MS: u64 = 1_700_086_400_000;

    fn mk(n: u8) -> MemberKey {
        MemberKey::Ed25519(key(n).public())
    }

    pub(super) fn bodies() -> Vec<(&'static str, AttestationBody)> {
        let proposal =
            |change| Claim::GovernanceProposal(Box::new(GovernanceProposal { change, expires_at_ms: EXPIRES_MS }));
        let chain = genesis().hash();
        vec![
            (
                "gov-proposal/add-member",
                body(
                    "bank-a",
                    20,
                    proposal(Change::AddMember {
                        name: name("bank-c"),
                        key: mk(3),
                        roles: vec![Role::Bank],
                        validator: true,
                    }),
                ),
            ),
            (
                "gov-proposal/remove-member",
                body("bank-a", 21, proposal(Change::RemoveMember { name: name("centre-b") })),
            ),
            (
                "gov-proposal/set-roles",
                body(
                    "bank-a",
                    22,
                    proposal(Change::SetRoles {
                        name: name("centre-b"),
                        roles: vec![Role::ServiceCentre, Role::RiskPool],
                        validator: false,
                    }),
                ),
            ),
            (
                "gov-proposal/revoke-key",
                body(
                    "bank-a",
                    23,
                    proposal(Change::RevokeKey { name: name("centre-b"), key: mk(2), replacement: mk(5) }),
                ),
            ),
            (
                "gov-proposal/set-consensus",
                body(
                    "bank-a",
                    24,
                    proposal(Change::SetConsensus(ConsensusParams {
                        block_records_max: 500,
                        block_bytes_max: 524_288,
                        timeout_propose_ms: 2000,
                        timeout_prevote_ms: 1000,
                        timeout_precommit_ms: 1000,
                        timeout_delta_ms: 500,
                    })),
                ),
            ),
            (
                "gov-approval",
                body("centre-b", 20, Claim::GovernanceApproval(GovernanceApproval { proposal: id(0x77) })),
            ),
            (
                "key-rotation",
                body(
                    "bank-a",
                    25,
                    Claim::KeyRotation(KeyRotation {
                        new_key: mk(4),
                        possession: governance::sign_possession(&key(4), &chain, &name("bank-a"), &mk(1)),
                    }),
                ),
            ),
        ]
    }

    /// (name, hex of body bytes, id).
    const EXPECTED: &[(&str, &str, &str)] = &[
        (
            "gov-proposal/add-member",
            "060000000000000062616e6b2d611400000000000000404ae7cf8b0100001100000000000000060000000000000062616e6b2d6300000000ed4928c628d1c2c6eae90338905995612959273a5c63f93636c14614ac8737d10100000000000000000000000100c40bd58b010000",
            "8c10d40b83a7fdb6cdabf8a5892d2f2e21459934e0dbd6380e04981a100d8b25",
        ),
        (
            "gov-proposal/remove-member",
            "060000000000000062616e6b2d611500000000000000404ae7cf8b0100001100000001000000080000000000000063656e7472652d6200c40bd58b010000",
            "1f6411e8d6bb7f9185c89fb29487c12df49825e26360326b707617605d5cdbd4",
        ),
        (
            "gov-proposal/set-roles",
            "060000000000000062616e6b2d611600000000000000404ae7cf8b0100001100000002000000080000000000000063656e7472652d62020000000000000001000000030000000000c40bd58b010000",
            "0bc599b67fd94eb26b1ff3bd6aa9c40725248d95f9162fd0de01e13a6666787c",
        ),
        (
            "gov-proposal/revoke-key",
            "060000000000000062616e6b2d611700000000000000404ae7cf8b0100001100000003000000080000000000000063656e7472652d62000000008139770ea87d175f56a35466c34c7ecccb8d8a91b4ee37a25df60f5b8fc9b394000000006e7a1cdd29b0b78fd13af4c5598feff4ef2a97166e3ca6f2e4fbfccd80505bf100c40bd58b010000",
            "6f909a1d682a08ad619f8c2ae2a2db6393f2c7e9bcccfbbaa0aecd5c8ae6af50",
        ),
        (
            "gov-proposal/set-consensus",
            "060000000000000062616e6b2d611800000000000000404ae7cf8b0100001100000004000000f401000000000800d007000000000000e803000000000000e803000000000000f40100000000000000c40bd58b010000",
            "95709aabdc02d57a35aff92bd463fa1be38e02482cca8c718a9887bb2d31bfd0",
        ),
        (
            "gov-approval",
            "080000000000000063656e7472652d621400000000000000404ae7cf8b010000120000007777777777777777777777777777777777777777777777777777777777777777",
            "0bf997017b2e61d1c89374fcef70361c122407fcd1019b92153fd8a5fed0e471",
        ),
        (
            "key-rotation",
            "060000000000000062616e6b2d611900000000000000404ae7cf8b0100001300000000000000ca93ac1705187071d67b83c7ff0efe8108e8ec4530575d7726879333dbdabe7c758158d24737757061644e2804b5304cb7153bfdb0a460af266e3fc2fd560f90965cd23d38da8ba8f256a7db11e46c8de9d41bae1b5dad9be6e912c85cf02805",
            "b5e54ed3ce001aa1bd46b2a7d11766ab9518c1a89f3a622472ae6cf228504158",
        ),
    ];

    #[test]
    fn governance_golden_vectors() {
        let chain = genesis().hash();
        let got = signed_rows(bodies());
        assert!(
            expected_rows(EXPECTED) == got,
            "the governance encoding changed; update docs/encoding.md §12 and:\n{got:#?}"
        );
        // The proof of possession in the rotation vector verifies, and only for its own message.
        let rotation = bodies().pop().unwrap().1;
        let Claim::KeyRotation(r) = rotation.claim else { unreachable!() };
        assert_eq!(governance::verify_possession(&chain, &name("bank-a"), &mk(1), &mk(4), &r.possession), Ok(()));
        assert!(governance::verify_possession(&chain, &name("centre-b"), &mk(1), &mk(4), &r.possession).is_err());
        assert_eq!(hex::encode(r.possession.0), POSSESSION_HEX);
        // The possession message body (after the domain tag and the genesis hash).
        assert_eq!(hex::encode(governance::possession_body(&name("bank-a"), &mk(1), &mk(4))), POSSESSION_BODY_HEX);
    }

    /// The appended witness changes (tags 5 and 6 of `Change`): their own list, so the
    /// vectors above stay exactly as they were.
    fn witness_bodies() -> Vec<(&'static str, AttestationBody)> {
        let proposal =
            |change| Claim::GovernanceProposal(Box::new(GovernanceProposal { change, expires_at_ms: EXPIRES_MS }));
        vec![
            (
                "gov-proposal/add-witness",
                body(
                    "bank-a",
                    26,
                    proposal(Change::AddWitness {
                        name: "w.example/w2".into(),
                        key: key(6).public(),
                        url: "http://127.0.0.1:29002".into(),
                    }),
                ),
            ),
            (
                "gov-proposal/remove-witness",
                body("bank-a", 27, proposal(Change::RemoveWitness { name: "w.example/w2".into() })),
            ),
        ]
    }

    const WITNESS_EXPECTED: &[(&str, &str, &str)] = &[
        (
            "gov-proposal/add-witness",
            "060000000000000062616e6b2d611a00000000000000404ae7cf8b01000011000000050000000c00000000000000772e6578616d706c652f77328a875fff1eb38451577acd5afee405456568dd7c89e090863a0557bc7af49f171600000000000000687474703a2f2f3132372e302e302e313a323930303200c40bd58b010000",
            "42755ba943795997c5f0608f0e45070e43bfb78f4c3c0dbcc5459623dc08511c",
        ),
        (
            "gov-proposal/remove-witness",
            "060000000000000062616e6b2d611b00000000000000404ae7cf8b01000011000000060000000c00000000000000772e6578616d706c652f773200c40bd58b010000",
            "8fdf55f6adac4cc17460036ac3343f43449add5e2c034ee0051f351b1761a10e",
        ),
    ];

    #[test]
    fn governance_witness_golden_vectors() {
        let got = signed_rows(witness_bodies());
        assert!(
            expected_rows(WITNESS_EXPECTED) == got,
            "the witness change encoding changed; update docs/encoding.md §12 and:\n{got:#?}"
        );
    }

    const POSSESSION_HEX: &str = "758158d24737757061644e2804b5304cb7153bfdb0a460af266e3fc2fd560f90965cd23d38da8ba8f256a7db11e46c8de9d41bae1b5dad9be6e912c85cf02805";
    const POSSESSION_BODY_HEX: &str = "060000000000000062616e6b2d61000000008a88e3dd7409f195fd52db2d3cba5d72ca6709bf1d94121bf3748801b40f6f5c00000000ca93ac1705187071d67b83c7ff0efe8108e8ec4530575d7726879333dbdabe7c";
}
// ==== END governance golden vectors ====
