//! The reference ceilings for `credence bench verify`: batch verification of bare signatures on every core, with 1,024 distinct keys (ed25519-dalek 3's `verify_batch`) and with as many signers as the chain has.
//!
//! * Distinct-key ceiling ([`dalek_batch_ceiling`]): dalek's `verify_batch` of 1,024
//!   signatures by 1,024 keys per call.
//! * Same-signers ceiling ([`same_signers_ceiling`]): 1,024 signatures by `signers`
//!   keys (signature `i` by key `i mod signers`) per call, verified two ways, dalek's
//!   `verify_batch` and the ledger's [`KeyTable`] (its batch equation groups the key
//!   terms by signer); the ceiling is the faster of the two.
//!
//! Every figure is signatures per second with one thread per core, each looping over
//! the same batch for about the given seconds; messages are 29-byte strings.

use std::time::{Duration, Instant};

use credence_ledger::sig::{self, KeySetItem, KeyTable, SignedBytes};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

/// Signatures per batch call (the verification core's batches are at most this size too).
const BATCH: usize = 1024;

/// Signatures per second that dalek's `verify_batch` sustains with one thread
/// per core, each verifying batches of 1,024 signatures by distinct keys for about `seconds`.
pub fn dalek_batch_ceiling(seconds: f64) -> f64 {
    Batch::new(BATCH).dalek_rate(seconds)
}

/// The same-signers ceiling: signatures per second with `signers` keys (at least 1).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SameSigners {
    /// Distinct keys the signatures are made by.
    pub signers: usize,
    /// dalek's `verify_batch`.
    pub dalek: f64,
    /// The ledger's [`KeyTable`] path; `None` above [`sig::KEY_TABLE_KEYS_MAX`] signers.
    pub key_table: Option<f64>,
}

impl SameSigners {
    /// The ceiling: the faster of the two.
    pub fn best(&self) -> f64 {
        self.key_table.map_or(self.dalek, |t| t.max(self.dalek))
    }
}

/// Batches of 1,024 signatures by `signers` keys (at least 1) for about `seconds` each
/// way: dalek's `verify_batch`, then the ledger's key-table batch (Raw messages).
pub fn same_signers_ceiling(signers: usize, seconds: f64) -> SameSigners {
    let signers = signers.clamp(1, BATCH);
    let batch = Batch::new(signers);
    let dalek = batch.dalek_rate(seconds);
    let key_table = batch.key_table_rate(seconds);
    SameSigners { signers, dalek, key_table }
}

/// 1,024 signed messages, message `i` signed by key `i mod keys`.
struct Batch {
    keys: Vec<SigningKey>,
    msgs: Vec<Vec<u8>>,
    sigs: Vec<ed25519_dalek::Signature>,
}

impl Batch {
    fn new(keys: usize) -> Batch {
        let keys: Vec<SigningKey> = (0..keys).map(|i| SigningKey::from_bytes(&[(i % 251) as u8 + 1; 32])).collect();
        let msgs: Vec<Vec<u8>> = (0..BATCH).map(|i| format!("credence ceiling message {i:08}").into_bytes()).collect();
        let sigs = msgs.iter().enumerate().map(|(i, m)| keys[i % keys.len()].sign(m)).collect();
        Batch { keys, msgs, sigs }
    }

    fn dalek_rate(&self, seconds: f64) -> f64 {
        let vks: Vec<VerifyingKey> = (0..BATCH).map(|i| self.keys[i % self.keys.len()].verifying_key()).collect();
        let refs: Vec<&[u8]> = self.msgs.iter().map(|m| m.as_slice()).collect();
        rate(seconds, || if ed25519_dalek::verify_batch(&refs, &self.sigs, &vks).is_ok() { BATCH } else { 0 })
    }

    fn key_table_rate(&self, seconds: f64) -> Option<f64> {
        let vks: Vec<sig::VerifyingKey> = self
            .keys
            .iter()
            .map(|k| sig::VerifyingKey::new(&sig::PublicKey(k.verifying_key().to_bytes())))
            .collect::<Result<_, _>>()
            .ok()?;
        let table = KeyTable::new(&vks)?;
        let sigs: Vec<sig::Signature> = self.sigs.iter().map(|s| sig::Signature(s.to_bytes())).collect();
        let items: Vec<KeySetItem> = (0..BATCH)
            .map(|i| KeySetItem { signer: i % self.keys.len(), msg: SignedBytes::Raw(&self.msgs[i]), sig: &sigs[i] })
            .collect();
        Some(rate(seconds, || table.verify_many(&items, 1).iter().filter(|v| v.is_ok()).count()))
    }
}

/// Verified signatures per second of `verify` (which returns how many it verified),
/// looped on one thread per core for about `seconds`.
fn rate(seconds: f64, verify: impl Fn() -> usize + Sync) -> f64 {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let deadline = Duration::from_secs_f64(seconds.max(0.1));
    let started = Instant::now();
    let verified: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0;
                    while started.elapsed() < deadline {
                        n += verify();
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    verified as f64 / started.elapsed().as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both ceilings verify every signature they count (a batch that failed would count 0).
    #[test]
    fn ceilings_count_verified_signatures() {
        assert!(dalek_batch_ceiling(0.1) > 0.0);
        let same = same_signers_ceiling(6, 0.1);
        assert_eq!(same.signers, 6);
        assert!(same.dalek > 0.0 && same.key_table.is_some_and(|t| t > 0.0));
        assert!(same.best() >= same.dalek);
        let many = same_signers_ceiling(sig::KEY_TABLE_KEYS_MAX + 1, 0.1);
        assert_eq!((many.key_table, many.best()), (None, many.dalek));
        assert_eq!(same_signers_ceiling(0, 0.1).signers, 1);
    }
}
