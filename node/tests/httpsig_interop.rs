//! RFC 9421 interoperability: requests signed by the independent PyPI library `http-message-signatures` verify with the node's code, and the node's signatures verify with it.
//!
//! Needs `python3` with `http-message-signatures`, which `tools::python_packages` installs
//! (tests/interop/requirements.txt) if it is missing.

use std::process::Command;

use credence_ledger::sig::SecretKey;
use credence_node::httpsig::{self, RequestParts, SignWith};

#[path = "../../tests/common/tools.rs"]
mod tools;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/interop/rfc9421.py");

fn python(args: &[&str]) -> std::process::Output {
    Command::new("python3").arg(SCRIPT).args(args).output().unwrap()
}

fn now_s() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[test]
fn python_signatures_verify_here() {
    tools::python_packages();
    let key = SecretKey::from_seed([0x42; 32]);
    for body in [None, Some("{\"purpose\":\"loan-application\"}")] {
        let method = if body.is_some() { "POST" } else { "GET" };
        let mut args = vec![
            "sign".to_string(),
            hex::encode(key.seed()),
            "c8b5".into(),
            method.into(),
            "http://127.0.0.1:8321/v1/enterprises/91440300708461136T/attestations?purpose=loan-application".into(),
        ];
        args.extend(body.map(String::from));
        let out = python(&args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let mut fields = vec![
            ("signature-input".to_string(), v["signature_input"].as_str().unwrap().to_string()),
            ("signature".to_string(), v["signature"].as_str().unwrap().to_string()),
        ];
        if let Some(d) = v["content_digest"].as_str() {
            fields.push(("content-digest".into(), d.to_string()));
        }
        let req = RequestParts {
            method: method.into(),
            path: "/v1/enterprises/91440300708461136T/attestations".into(),
            query: Some("purpose=loan-application".into()),
            authority: Some("127.0.0.1:8321".into()),
            fields,
        };
        let parsed = httpsig::parse(&req).unwrap();
        httpsig::verify(&parsed, &key.public()).unwrap();
        httpsig::check_profile(&parsed, body.is_some(), now_s()).unwrap();
        if let Some(b) = body {
            let digest = req.fields.iter().find(|(n, _)| n == "content-digest").unwrap();
            httpsig::check_content_digest(&digest.1, b.as_bytes()).unwrap();
            assert!(httpsig::check_content_digest(&digest.1, b"tampered").is_err());
        }
        // The same signature over another path is refused.
        let mut other = req.clone();
        other.path = "/v1/enterprises/914403001922038216/attestations".into();
        assert!(httpsig::verify(&httpsig::parse(&other).unwrap(), &key.public()).is_err());
    }
}

#[test]
fn signatures_made_here_verify_in_python() {
    tools::python_packages();
    let key = SecretKey::from_seed([0x43; 32]);
    let req = RequestParts {
        method: "GET".into(),
        path: "/v1/attestations/00ff".into(),
        query: Some("purpose=post-loan-monitoring".into()),
        authority: None,
        fields: vec![],
    };
    let now = now_s();
    let with = SignWith { created: now, expires: now + 30, nonce: Some("rust-1"), keyid: "c8b5" };
    let (input, sig) = httpsig::sign(&req, &["@method", "@path", "@query"], &with, &key).unwrap();
    let url = "http://127.0.0.1:8321/v1/attestations/00ff?purpose=post-loan-monitoring";
    let out = python(&["verify", &hex::encode(key.public().0), "GET", url, &input, &sig]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let wrong = "http://127.0.0.1:8321/v1/attestations/00ff?purpose=loan-application";
    let out = python(&["verify", &hex::encode(key.public().0), "GET", wrong, &input, &sig]);
    assert!(!out.status.success(), "a signature over another query must not verify");
}
