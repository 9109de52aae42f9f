//! Confidential amounts: an amount field may hold a salted SHA-256 commitment instead of the money (docs/encoding.md §13, docs/ACCESS.md).
//!
//! An attester seals an amount by putting `Amount::Sealed { currency, commitment }` in the
//! claim; the *opening* (field name, salt, value in fen) stays with the attester's node,
//! which discloses it to consented readers. A reader checks an opening by recomputing the
//! commitment ([`commitment`]) and comparing it with the leaf's. Only the amounts that no
//! ledger rule and no regulator figure reads may be sealed: R&D spend, patent valuation,
//! and the secured amount of both pledge kinds ([`SEALABLE_FIELDS`]).
//!
//! Commitment (all big-endian where an integer is):
//! `SHA-256("credence:amount:v1\0" ‖ len(field) u8 ‖ field ‖ salt (32) ‖ currency (3) ‖ fen u64 BE)`.
//! The field name binds the opening to one field (an opening of `rd-spend.amount` does not
//! open `pledge.secured`); the 32-byte random salt, never reused, keeps a guess of the
//! value from being confirmed by hashing candidates.

use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hash::Hash;
use crate::ids::{Currency, Money};

/// Domain-separation prefix of every amount commitment (19 bytes, ends with a zero byte).
pub const COMMITMENT_DOMAIN: &[u8] = b"credence:amount:v1\0";
/// Bytes of an opening's salt.
pub const SALT_BYTES: usize = 32;
/// The sealable fields, by their qualified name (`<kind>.<field>`): the names committed to
/// and the keys under which a node keeps openings.
pub const SEALABLE_FIELDS: [&str; 4] =
    ["rd-spend.amount", "patent-valuation.value", "pledge.secured", "ip-pledge.secured"];
/// Most openings one attestation has (one per sealable field of its kind: today one).
pub const OPENINGS_PER_ATTESTATION_MAX: usize = 4;
/// Longest field name in an opening, in bytes.
pub const FIELD_NAME_BYTES_MAX: usize = 64;

/// A money field that may be sealed. Binary form (docs/encoding.md §13): `u8` form 0 then the
/// 11-byte `Money`; or form 1 then the 3-byte currency and the 32-byte commitment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Amount {
    /// The amount in clear.
    Plain(Money),
    /// Only the currency and a salted commitment to the amount are on the ledger.
    Sealed { currency: Currency, commitment: Hash },
}

impl From<Money> for Amount {
    fn from(m: Money) -> Amount {
        Amount::Plain(m)
    }
}

impl Amount {
    pub fn currency(&self) -> Currency {
        match self {
            Amount::Plain(m) => m.currency,
            Amount::Sealed { currency, .. } => *currency,
        }
    }

    /// The money, when in clear.
    pub fn plain(&self) -> Option<Money> {
        match self {
            Amount::Plain(m) => Some(*m),
            Amount::Sealed { .. } => None,
        }
    }

    pub fn is_sealed(&self) -> bool {
        matches!(self, Amount::Sealed { .. })
    }

    /// Seals `money` as field `field` with `salt`; returns the sealed amount and its opening.
    pub fn seal(field: &str, money: Money, salt: [u8; SALT_BYTES]) -> (Amount, Opening) {
        let opening = Opening { field: field.to_string(), salt, fen: money.fen };
        (Amount::Sealed { currency: money.currency, commitment: commitment(field, &salt, money) }, opening)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Amount::Plain(m) => write!(f, "{m}"),
            Amount::Sealed { currency, .. } => write!(f, "confidential {currency} amount (sealed)"),
        }
    }
}

/// The commitment to `money` in field `field` under `salt` (see the module doc).
pub fn commitment(field: &str, salt: &[u8; SALT_BYTES], money: Money) -> Hash {
    let name = field.as_bytes();
    // Field names are short constants; a longer name is cut to keep the prefix one byte.
    let len = [u8::try_from(name.len()).unwrap_or(u8::MAX)];
    let name = &name[..usize::from(len[0])];
    let currency: [u8; 3] = money.currency.into();
    Hash::digest(&[COMMITMENT_DOMAIN, &len, name, salt, &currency, &money.fen.to_be_bytes()])
}

/// 32 fresh random bytes for one seal (never reuse a salt).
pub fn fresh_salt() -> Result<[u8; SALT_BYTES], String> {
    let mut salt = [0u8; SALT_BYTES];
    getrandom::fill(&mut salt).map_err(|e| format!("the operating system's random source failed: {e}"))?;
    Ok(salt)
}

/// What opens one sealed amount: its field, salt and value (the currency is in the leaf).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opening {
    /// Qualified field name, one of [`SEALABLE_FIELDS`].
    pub field: String,
    pub salt: [u8; SALT_BYTES],
    pub fen: u64,
}

/// Why an opening does not open a sealed amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct OpeningError {
    pub field: String,
    pub rule: String,
}

impl Opening {
    /// The money this opening discloses for `sealed`, if it matches the commitment.
    pub fn open(&self, sealed: &Amount) -> Result<Money, OpeningError> {
        let err = |rule: &str| Err(OpeningError { field: self.field.clone(), rule: rule.to_string() });
        let Amount::Sealed { currency, commitment: c } = sealed else {
            return err("the amount is in clear on the ledger; there is nothing to open");
        };
        let money = Money { fen: self.fen, currency: *currency };
        if commitment(&self.field, &self.salt, money) != *c {
            return err("the opening does not match the ledger's commitment (wrong value, salt or field)");
        }
        Ok(money)
    }
}

/// Checks a complete set of openings for `claim` as its attester's node stores them: one
/// opening per sealed amount and none for anything else, each matching its commitment, and
/// the rules of the amount in clear (greater than zero) that validators without the
/// opening cannot check. At most [`OPENINGS_PER_ATTESTATION_MAX`].
pub fn check_openings(claim: &crate::attestation::Claim, openings: &[Opening]) -> Result<(), OpeningError> {
    let err = |field: &str, rule: String| Err(OpeningError { field: field.to_string(), rule });
    if openings.len() > OPENINGS_PER_ATTESTATION_MAX {
        return err("openings", format!("at most {OPENINGS_PER_ATTESTATION_MAX} per attestation"));
    }
    let sealed = claim.sealed_amounts();
    for (i, o) in openings.iter().enumerate() {
        if openings[..i].iter().any(|p| p.field == o.field) {
            return err(&o.field, "opened twice".into());
        }
        let Some((_, amount)) = sealed.iter().find(|(f, _)| *f == o.field) else {
            return err(&o.field, format!("the {} record has no sealed amount of this name", claim.kind().name()));
        };
        let money = o.open(amount)?;
        if money.fen == 0 {
            return err(
                &o.field,
                "must be greater than zero (checked by the attester's node, which knows the value)".into(),
            );
        }
    }
    if let Some((field, _)) = sealed.iter().find(|(f, _)| !openings.iter().any(|o| o.field == *f)) {
        return err(field, "sealed but not opened: the attester's node keeps every opening of its records".into());
    }
    Ok(())
}

// ---- Serde: a u8 form tag (not bincode's u32 enum tag), so the bytes are exactly as specified. ----

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Amount::Plain(m) => {
                let mut t = s.serialize_tuple(2)?;
                t.serialize_element(&0u8)?;
                t.serialize_element(m)?;
                t.end()
            }
            Amount::Sealed { currency, commitment } => {
                let mut t = s.serialize_tuple(3)?;
                t.serialize_element(&1u8)?;
                t.serialize_element(currency)?;
                t.serialize_element(commitment)?;
                t.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Amount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an amount: form 0 and money, or form 1, currency and commitment")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Amount, A::Error> {
                let form: u8 = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
                match form {
                    0 => {
                        let m: Money = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
                        Ok(Amount::Plain(m))
                    }
                    1 => {
                        let currency: Currency =
                            seq.next_element()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
                        let commitment: Hash =
                            seq.next_element()?.ok_or_else(|| de::Error::invalid_length(2, &self))?;
                        Ok(Amount::Sealed { currency, commitment })
                    }
                    other => Err(de::Error::custom(format!("amount form {other} is neither 0 (plain) nor 1 (sealed)"))),
                }
            }
        }
        // The longer form's length; a plain amount reads two of the three elements.
        d.deserialize_tuple(3, V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;

    fn cny(fen: u64) -> Money {
        Money { fen, currency: Currency::CNY }
    }

    /// docs/encoding.md §13's worked vector.
    #[test]
    fn the_commitment_matches_the_documented_vector() {
        let salt = [0x5a; 32];
        let c = commitment("rd-spend.amount", &salt, cny(125_000_000));
        // The preimage, byte by byte.
        let mut pre = b"credence:amount:v1\0".to_vec();
        pre.push(15);
        pre.extend_from_slice(b"rd-spend.amount");
        pre.extend_from_slice(&[0x5a; 32]);
        pre.extend_from_slice(b"CNY");
        pre.extend_from_slice(&[0, 0, 0, 0, 0x07, 0x73, 0x59, 0x40]);
        assert_eq!(pre.len(), 19 + 1 + 15 + 32 + 3 + 8);
        assert_eq!(c, Hash::digest(&[&pre]));
        assert_eq!(c.to_hex(), "27b418f59945905db445ebbef52c1d2a9b74a530cf028a4e6691d146d7ba04c4");
    }

    #[test]
    fn both_forms_round_trip_with_the_specified_bytes() {
        let plain = Amount::Plain(cny(125_000_000));
        let bytes = codec::encode(&plain);
        assert_eq!(hex::encode(&bytes), "004059730700000000434e59");
        assert_eq!(codec::decode::<Amount>("amount", &bytes, 64), Ok(plain));
        let (sealed, _) = Amount::seal("pledge.secured", cny(7), [1; 32]);
        let bytes = codec::encode(&sealed);
        assert_eq!(bytes.len(), 1 + 3 + 32);
        assert_eq!(&bytes[..4], b"\x01CNY");
        assert_eq!(codec::decode::<Amount>("amount", &bytes, 64), Ok(sealed));
        // Form 2 does not exist; a truncated sealed amount is refused.
        assert!(codec::decode::<Amount>("amount", &[2, b'C', b'N', b'Y'], 64).is_err());
        assert!(codec::decode::<Amount>("amount", &bytes[..20], 64).is_err());
        // A bad currency is refused inside a sealed amount too.
        let mut bad = bytes.clone();
        bad[1] = b'c';
        assert!(codec::decode::<Amount>("amount", &bad, 64).is_err());
    }

    #[test]
    fn a_node_checks_the_whole_set_of_openings_and_the_plain_rules() {
        use crate::attestation::{Claim, RdCategory, RdSpend};
        let mut claim = Claim::RdSpend(RdSpend {
            enterprise: crate::ids::Uscc::parse("e", "914403001922038216").unwrap(),
            period: crate::ids::Period::parse("p", "2024").unwrap(),
            amount: cny(0).into(),
            category: RdCategory::Total,
            evidence: Hash::ZERO,
        });
        let openings = claim.seal_amounts().unwrap();
        assert_eq!(openings.len(), 1);
        assert!(claim.check_fields().is_ok(), "validators only see the form");
        let e = check_openings(&claim, &openings).unwrap_err();
        assert_eq!(e.field, "rd-spend.amount");
        assert!(e.rule.contains("greater than zero"), "{e}");
        let Claim::RdSpend(r) = &mut claim else { unreachable!() };
        let (sealed, o) = Amount::seal("rd-spend.amount", cny(5), [3; 32]);
        r.amount = sealed;
        assert_eq!(check_openings(&claim, std::slice::from_ref(&o)), Ok(()));
        assert_eq!(check_openings(&claim, &[]).unwrap_err().field, "rd-spend.amount");
        let wrong = Opening { fen: 6, ..o.clone() };
        assert!(check_openings(&claim, &[wrong]).unwrap_err().rule.contains("does not match"));
        let other = Opening { field: "pledge.secured".into(), ..o.clone() };
        assert_eq!(check_openings(&claim, &[o.clone(), other]).unwrap_err().field, "pledge.secured");
        assert!(check_openings(&claim, &[o.clone(), o]).unwrap_err().rule.contains("twice"));
    }

    #[test]
    fn an_opening_opens_only_its_own_field_salt_and_value() {
        let (sealed, opening) = Amount::seal("rd-spend.amount", cny(125_000_000), [9; 32]);
        assert_eq!(opening.open(&sealed), Ok(cny(125_000_000)));
        let moved = Opening { field: "pledge.secured".into(), ..opening.clone() };
        assert!(moved.open(&sealed).is_err(), "moved to another field");
        let salted = Opening { salt: [8; 32], ..opening.clone() };
        assert!(salted.open(&sealed).is_err(), "wrong salt");
        let more = Opening { fen: 125_000_001, ..opening.clone() };
        let e = more.open(&sealed).unwrap_err();
        assert_eq!(e.field, "rd-spend.amount");
        assert!(e.rule.contains("does not match"), "{e}");
        assert!(opening.open(&Amount::Plain(cny(125_000_000))).is_err(), "nothing to open");
    }
}
