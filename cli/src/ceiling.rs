//! The reference ceiling for `credence bench verify`: ed25519-dalek 3's `verify_batch` of 1,024 signatures per call, on every core.

use std::time::{Duration, Instant};

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};

const BATCH: usize = 1024;

/// Signatures per second that dalek's `verify_batch` sustains with one thread
/// per core, each verifying batches of 1,024 signatures for about `seconds`.
pub fn dalek_batch_ceiling(seconds: f64) -> f64 {
    let keys: Vec<SigningKey> = (0..BATCH).map(|i| SigningKey::from_bytes(&[(i % 251) as u8 + 1; 32])).collect();
    let msgs: Vec<Vec<u8>> = (0..BATCH).map(|i| format!("credence ceiling message {i:08}").into_bytes()).collect();
    let sigs: Vec<_> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
    let vks: Vec<VerifyingKey> = keys.iter().map(|k| k.verifying_key()).collect();
    let refs: Vec<&[u8]> = msgs.iter().map(|m| m.as_slice()).collect();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let deadline = Duration::from_secs_f64(seconds.max(0.1));
    let started = Instant::now();
    let verified: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut n = 0;
                    while started.elapsed() < deadline {
                        if ed25519_dalek::verify_batch(&refs, &sigs, &vks).is_ok() {
                            n += BATCH;
                        }
                    }
                    n
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or(0)).sum()
    });
    verified as f64 / started.elapsed().as_secs_f64()
}
