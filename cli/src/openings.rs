//! Reading confidential amounts (docs/ACCESS.md "Confidential amounts"): fetch the openings of each sealed amount from the node, check each against the commitment in the leaf, and fill in the amounts that open.
//!
//! The commitment comes from the record's canonical bytes (the item's `attestation`), which
//! must hash to the item's id, so a node cannot change it without changing the id (whose
//! inclusion `credence prove` checks). An opening that does not match is the node serving a
//! wrong value: it is reported as such and the command exits non-zero, since an auditor must
//! not read on past a wrong figure. Without an opening (no consent, no key, a node that does
//! not hold them) the amount is shown as confidential, never as zero.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use credence_ledger::attestation::Attestation;
use credence_ledger::ids::Money;
use credence_node::api::views::{AmountView, AttestationView, ClaimView, OpeningsView};

use crate::http::Conn;
use crate::query;

/// What the reader knows of one sealed amount.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Disclosure {
    /// The opening matched the leaf's commitment.
    Opened(Money),
    /// No opening was disclosed to this reader; why.
    NotDisclosed(String),
    /// The node served an opening that does not match (or bytes that are not the record).
    Wrong(String),
}

/// The disclosures of every sealed amount read, by (attestation id, field name).
#[derive(Debug, Default)]
pub struct Disclosures {
    pub by: BTreeMap<(String, String), Disclosure>,
}

impl Disclosures {
    /// The errors: openings that do not match their commitments.
    pub fn wrong(&self) -> Vec<String> {
        self.by.values().filter_map(|d| if let Disclosure::Wrong(e) = d { Some(e.clone()) } else { None }).collect()
    }

    pub fn get(&self, id: &str, field: &str) -> Option<&Disclosure> {
        self.by.get(&(id.to_string(), field.to_string()))
    }

    /// Fills the sealed amounts of `items` that opened (`fen`, `amount`, `disclosed`).
    pub fn apply(&self, items: &mut [AttestationView]) {
        for a in items {
            let (field, amount): (&str, &mut AmountView) = match &mut a.claim {
                ClaimView::RdSpend { amount, .. } => ("rd-spend.amount", amount),
                ClaimView::PatentValuation { value, .. } => ("patent-valuation.value", value),
                ClaimView::Pledge { secured, .. } => ("pledge.secured", secured),
                _ => continue,
            };
            if let Some(Disclosure::Opened(m)) = self.get(&a.id, field) {
                amount.fen = Some(m.fen);
                amount.amount = Some(m.to_decimal_string());
                amount.disclosed = true;
            }
        }
    }
}

/// The record an item carries, checked to hash to its id.
fn record_of(item: &AttestationView) -> Result<Option<Attestation>, String> {
    let Some(b64) = &item.attestation else { return Ok(None) };
    let bytes = B64.decode(b64).map_err(|e| format!("record {}: the node's bytes are not base64: {e}", item.id))?;
    let a = Attestation::from_bytes(&bytes).map_err(|e| format!("record {}: {e}", item.id))?;
    if a.id().to_string() != item.id {
        return Err(format!("record {}: the node's bytes hash to {}, not to the id it gave", item.id, a.id()));
    }
    Ok(Some(a))
}

/// Checks a node's answer against the leaf: one disclosure per sealed amount of `leaf`.
pub fn check_answer(id: &str, leaf: &Attestation, answer: &OpeningsView) -> Vec<(String, Disclosure)> {
    let mut out = Vec::new();
    for (field, amount) in leaf.body.claim.sealed_amounts() {
        let d = match answer.openings.iter().find(|o| o.field == field) {
            None => Disclosure::NotDisclosed("the node's answer holds no opening for it".into()),
            Some(v) => match v.to_opening() {
                Err(e) => Disclosure::Wrong(format!("opening for {field} of {id} is malformed: {e}")),
                Ok(o) => match o.open(amount) {
                    Ok(m) => Disclosure::Opened(m),
                    Err(_) => Disclosure::Wrong(format!(
                        "opening for {field} of {id} does not match the ledger's commitment: the node served a wrong value"
                    )),
                },
            },
        };
        out.push((field.to_string(), d));
    }
    out
}

/// Fetches and checks the openings of every sealed amount in `items` (read with `read`, the
/// `&purpose=…&consent=…` of the restricted read; none without a purpose).
pub fn fetch<'a>(
    conn: &mut Conn,
    items: impl IntoIterator<Item = &'a AttestationView>,
    read: &str,
) -> anyhow::Result<Disclosures> {
    let mut out = Disclosures::default();
    for item in items {
        if item.status != "committed" {
            continue;
        }
        let leaf = match record_of(item) {
            Ok(Some(a)) => a,
            Ok(None) => continue,
            Err(e) => {
                out.by.insert((item.id.clone(), "record".into()), Disclosure::Wrong(e));
                continue;
            }
        };
        let sealed = leaf.body.claim.sealed_amounts();
        if sealed.is_empty() {
            continue;
        }
        let answer = if read.is_empty() {
            Err("read without --purpose: openings are a restricted read".to_string())
        } else {
            let path = format!("/v1/attestations/{}/openings?{}", query::seg(&item.id), &read[1..]);
            let r = conn.get(&path)?;
            if r.status == 200 {
                serde_json::from_slice::<OpeningsView>(&r.body).map_err(|e| format!("unexpected answer: {e}"))
            } else {
                Err(query::node_error(r.status, &r.body))
            }
        };
        match answer {
            Ok(v) => {
                for (field, d) in check_answer(&item.id, &leaf, &v) {
                    out.by.insert((item.id.clone(), field), d);
                }
            }
            Err(why) => {
                for (field, _) in sealed {
                    out.by.insert((item.id.clone(), field.to_string()), Disclosure::NotDisclosed(why.clone()));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use credence_ledger::attestation::{AttestationBody, Claim, RdCategory, RdSpend};
    use credence_ledger::hash::Hash;
    use credence_ledger::ids::{Currency, MemberName, Period, Uscc};
    use credence_ledger::sig::SecretKey;
    use credence_node::api::views::OpeningView;

    fn sealed_leaf(fen: u64) -> (Attestation, Vec<credence_ledger::confidential::Opening>) {
        let mut claim = Claim::RdSpend(RdSpend {
            enterprise: Uscc::parse("e", "914403001922038216").unwrap(),
            period: Period::parse("p", "2024").unwrap(),
            amount: Money { fen, currency: Currency::CNY }.into(),
            category: RdCategory::Total,
            evidence: Hash::ZERO,
        });
        let openings = claim.seal_amounts().unwrap();
        let body = AttestationBody {
            attester: MemberName::parse("m", "centre-b").unwrap(),
            sequence: 1,
            issued_at_ms: 1,
            claim,
        };
        (body.sign(&SecretKey::from_seed([2; 32]), &Hash::ZERO), openings)
    }

    fn answer(openings: &[credence_ledger::confidential::Opening]) -> OpeningsView {
        OpeningsView {
            id: String::new(),
            attester: "centre-b".into(),
            openings: openings.iter().map(|o| OpeningView::of(o, &Currency::CNY)).collect(),
        }
    }

    #[test]
    fn a_matching_opening_discloses_the_amount() {
        let (leaf, openings) = sealed_leaf(125_000_000);
        let got = check_answer("x", &leaf, &answer(&openings));
        assert_eq!(
            got,
            vec![(
                "rd-spend.amount".to_string(),
                Disclosure::Opened(Money { fen: 125_000_000, currency: Currency::CNY })
            )]
        );
    }

    #[test]
    fn a_node_serving_a_wrong_value_is_caught() {
        let (leaf, mut openings) = sealed_leaf(125_000_000);
        openings[0].fen += 100;
        let got = check_answer("abc", &leaf, &answer(&openings));
        let Disclosure::Wrong(e) = &got[0].1 else { panic!("{got:?}") };
        assert_eq!(
            e,
            "opening for rd-spend.amount of abc does not match the ledger's commitment: the node served a wrong value"
        );
        // No opening at all is not a wrong value: the amount stays confidential.
        assert!(matches!(check_answer("abc", &leaf, &answer(&[]))[0].1, Disclosure::NotDisclosed(_)));
    }
}
