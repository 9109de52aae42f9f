//! RFC 9421 HTTP Message Signatures with Ed25519, and RFC 9530 `Content-Digest`: the signature base, signing (the CLI) and verification (the node).
//!
//! The mechanics follow RFC 9421 exactly (§2.1 HTTP fields, §2.2 derived components, §2.3
//! `@signature-params`, §2.5 the signature base, §3.3.6 Ed25519, §4 the `Signature-Input` and
//! `Signature` fields); structured fields are parsed and serialized by the `sfv` crate (RFC
//! 9651). Supported components: `@method`, `@path`, `@query`, `@authority` and HTTP fields
//! without component parameters (`;sf`, `;key`, `;bs`, `;req`, `;name` are refused as
//! unsupported). Credence's own profile (which components and parameters a request to a node
//! must carry) is [`check_profile`]; docs/ACCESS.md.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use sfv::{BareItem, Dictionary, InnerList, Item, KeyRef, ListEntry, ListSerializer, Parser, StringRef};
use sha2::{Digest, Sha256, Sha512};

use credence_ledger::sig::{PublicKey, SecretKey, Signature};

/// Largest clock difference tolerated between a signer and the node, in seconds.
pub const CLOCK_SKEW_S: i64 = 30;
/// Longest validity of one signature (`expires − created`), in seconds; with the skew it
/// bounds how long the node must remember a signature to refuse its replay.
pub const SIGNATURE_LIFETIME_S_MAX: i64 = 60;
/// Most covered components in one signature.
pub const COMPONENTS_MAX: usize = 16;
/// Longest `Signature-Input` or `Signature` field the node parses.
pub const FIELD_BYTES_MAX: usize = 4096;
/// The algorithm name of RFC 9421 §6.2.2 that Credence requires.
pub const ALG: &str = "ed25519";

/// A request as far as a signature sees it.
#[derive(Clone, Debug, Default)]
pub struct RequestParts {
    /// Upper-case method, e.g. `GET`.
    pub method: String,
    /// The absolute path, without the query.
    pub path: String,
    /// The query without its `?`, if the target has one.
    pub query: Option<String>,
    /// The authority (`Host`), if known.
    pub authority: Option<String>,
    /// Header fields, in order: lower-case name and value (one entry per field line).
    pub fields: Vec<(String, String)>,
}

impl RequestParts {
    fn field(&self, name: &str) -> Option<String> {
        let lines: Vec<&str> =
            self.fields.iter().filter(|(n, _)| n == name).map(|(_, v)| v.trim_matches([' ', '\t'])).collect();
        (!lines.is_empty()).then(|| lines.join(", "))
    }
}

/// Why a signature is refused: the field or parameter at fault and the rule it breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {rule}")]
pub struct SigRefusal {
    pub field: &'static str,
    pub rule: String,
}

fn refuse<T>(field: &'static str, rule: impl Into<String>) -> Result<T, SigRefusal> {
    Err(SigRefusal { field, rule: rule.into() })
}

/// The signature parameters of RFC 9421 §2.3 that Credence reads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SigParams {
    pub created: Option<i64>,
    pub expires: Option<i64>,
    pub nonce: Option<String>,
    pub alg: Option<String>,
    pub keyid: Option<String>,
    pub tag: Option<String>,
}

/// One parsed signature over a request, with its signature base.
#[derive(Clone, Debug)]
pub struct Parsed {
    pub label: String,
    /// Covered component names, in order.
    pub components: Vec<String>,
    pub params: SigParams,
    pub signature: Signature,
    /// The signature base (RFC 9421 §2.5) recreated from the request.
    pub base: String,
}

fn component_value(req: &RequestParts, name: &str) -> Result<String, SigRefusal> {
    match name {
        "@method" => Ok(req.method.clone()),
        "@path" => Ok(if req.path.is_empty() { "/".into() } else { req.path.clone() }),
        "@query" => Ok(format!("?{}", req.query.as_deref().unwrap_or(""))),
        "@authority" => match &req.authority {
            Some(a) => Ok(a.to_ascii_lowercase()),
            None => refuse("signature-input", "@authority is covered but the request has no authority"),
        },
        n if n.starts_with('@') => refuse("signature-input", format!("derived component {n} is not supported")),
        n => match req.field(n) {
            Some(v) => Ok(v),
            None => refuse("signature-input", format!("covered field '{n}' is not in the request")),
        },
    }
}

fn serialize_inner_list(list: &InnerList) -> String {
    let mut ser = ListSerializer::new();
    ser.members([&ListEntry::InnerList(list.clone())]);
    ser.finish().unwrap_or_default()
}

fn string_item(s: &str) -> Result<Item, SigRefusal> {
    let s = StringRef::from_str(s).map_err(|e| SigRefusal { field: "signature-input", rule: e.to_string() })?;
    Ok(Item::new(s.to_owned()))
}

/// The signature base of RFC 9421 §2.5 for `components` and the serialized `@signature-params` list.
pub fn signature_base(req: &RequestParts, list: &InnerList) -> Result<String, SigRefusal> {
    let mut base = String::new();
    let mut seen = Vec::new();
    for item in &list.items {
        let Some(name) = item.bare_item.as_string() else {
            return refuse("signature-input", "a covered component identifier must be a string");
        };
        let name = name.as_str();
        if !item.params.is_empty() {
            return refuse("signature-input", format!("component parameters on '{name}' are not supported"));
        }
        if name.bytes().any(|b| b.is_ascii_uppercase()) {
            return refuse("signature-input", format!("component '{name}' must be lower case"));
        }
        if seen.contains(&name) {
            return refuse("signature-input", format!("component '{name}' is covered twice"));
        }
        seen.push(name);
        let value = component_value(req, name)?;
        if value.bytes().any(|b| b == b'\n' || b == b'\r') || !value.is_ascii() {
            return refuse("signature-input", format!("the value of '{name}' cannot be in a signature base"));
        }
        base.push_str(&format!("\"{name}\": {value}\n"));
    }
    base.push_str(&format!("\"@signature-params\": {}", serialize_inner_list(list)));
    Ok(base)
}

fn params_of(list: &InnerList) -> Result<SigParams, SigRefusal> {
    let mut p = SigParams::default();
    for (k, v) in &list.params {
        let int = |v: &BareItem| match v.as_integer() {
            Some(i) => Ok(i64::from(i)),
            None => refuse("signature-input", format!("parameter {} must be an integer", k.as_str())),
        };
        let string = |v: &BareItem| match v.as_string() {
            Some(s) => Ok(s.as_str().to_string()),
            None => refuse("signature-input", format!("parameter {} must be a string", k.as_str())),
        };
        match k.as_str() {
            "created" => p.created = Some(int(v)?),
            "expires" => p.expires = Some(int(v)?),
            "nonce" => p.nonce = Some(string(v)?),
            "alg" => p.alg = Some(string(v)?),
            "keyid" => p.keyid = Some(string(v)?),
            "tag" => p.tag = Some(string(v)?),
            other => return refuse("signature-input", format!("unknown signature parameter '{other}'")),
        }
    }
    Ok(p)
}

/// Parses the request's one signature (`Signature-Input` and `Signature` with a single,
/// matching label) and recreates its signature base. Does not check the signature.
pub fn parse(req: &RequestParts) -> Result<Parsed, SigRefusal> {
    let (Some(input), Some(sig)) = (req.field("signature-input"), req.field("signature")) else {
        return refuse("signature", "the request is not signed (RFC 9421 Signature-Input and Signature fields)");
    };
    if input.len() > FIELD_BYTES_MAX || sig.len() > FIELD_BYTES_MAX {
        return refuse("signature", format!("Signature-Input and Signature are limited to {FIELD_BYTES_MAX} bytes"));
    }
    let inputs: Dictionary = Parser::new(&input)
        .parse()
        .map_err(|e| SigRefusal { field: "signature-input", rule: format!("not a structured dictionary: {e}") })?;
    let sigs: Dictionary = Parser::new(&sig)
        .parse()
        .map_err(|e| SigRefusal { field: "signature", rule: format!("not a structured dictionary: {e}") })?;
    if inputs.len() != 1 || sigs.len() != 1 {
        return refuse("signature", "exactly one signature (one label) is accepted");
    }
    let Some((label, entry)) = inputs.iter().next() else {
        return refuse("signature-input", "no signature label");
    };
    let label = label.as_str().to_string();
    let ListEntry::InnerList(list) = entry else {
        return refuse("signature-input", "the signature's value must be an inner list of components");
    };
    if list.items.len() > COMPONENTS_MAX {
        return refuse("signature-input", format!("at most {COMPONENTS_MAX} covered components"));
    }
    let Some(ListEntry::Item(sig_item)) = sigs.get(label.as_str()) else {
        return refuse("signature", format!("no byte sequence under the label '{label}' of Signature-Input"));
    };
    let Some(bytes) = sig_item.bare_item.as_byte_sequence() else {
        return refuse("signature", "the signature must be a byte sequence");
    };
    let Ok(signature) = <[u8; 64]>::try_from(bytes) else {
        return refuse("signature", "an Ed25519 signature is 64 bytes");
    };
    let params = params_of(list)?;
    let base = signature_base(req, list)?;
    let components =
        list.items.iter().filter_map(|i| i.bare_item.as_string().map(|s| s.as_str().to_string())).collect();
    Ok(Parsed { label, components, params, signature: Signature(signature), base })
}

/// Checks the Ed25519 signature of `parsed` under `key` (ZIP-215, as every signature of Credence).
pub fn verify(parsed: &Parsed, key: &PublicKey) -> Result<(), SigRefusal> {
    credence_ledger::sig::verify_raw(key, parsed.base.as_bytes(), &parsed.signature)
        .map_err(|e| SigRefusal { field: "signature", rule: format!("does not verify for this request and key: {e}") })
}

/// Credence's profile (docs/ACCESS.md): `@method`, `@path` and `@query` covered, and
/// `content-digest` when the request has a body; `created`, `expires`, `keyid` and
/// `alg="ed25519"` present; `created − skew ≤ now ≤ expires + skew`, and a lifetime of at
/// most [`SIGNATURE_LIFETIME_S_MAX`].
pub fn check_profile(parsed: &Parsed, has_body: bool, now_s: i64) -> Result<(), SigRefusal> {
    let mut required = vec!["@method", "@path", "@query"];
    if has_body {
        required.push("content-digest");
    }
    for r in required {
        if !parsed.components.iter().any(|c| c == r) {
            return refuse("signature-input", format!("must cover {r}"));
        }
    }
    let p = &parsed.params;
    match p.alg.as_deref() {
        Some(ALG) => {}
        Some(other) => return refuse("alg", format!("'{other}' is not accepted; use \"{ALG}\"")),
        None => return refuse("alg", format!("the alg parameter is required and must be \"{ALG}\"")),
    }
    let (Some(created), Some(expires)) = (p.created, p.expires) else {
        return refuse("created", "the created and expires parameters are required");
    };
    if expires <= created || expires - created > SIGNATURE_LIFETIME_S_MAX {
        return refuse("expires", format!("must be after created and at most {SIGNATURE_LIFETIME_S_MAX} s later"));
    }
    if created > now_s.saturating_add(CLOCK_SKEW_S) {
        return refuse("created", format!("{created} is in the future (node time {now_s}, skew {CLOCK_SKEW_S} s)"));
    }
    if now_s > expires.saturating_add(CLOCK_SKEW_S) {
        return refuse(
            "expires",
            format!("the signature expired at {expires} (node time {now_s}, skew {CLOCK_SKEW_S} s)"),
        );
    }
    if p.keyid.is_none() {
        return refuse("keyid", "the keyid parameter is required (the access-key grant's id)");
    }
    Ok(())
}

/// The RFC 9530 `Content-Digest` value of `body`: `sha-256=:<base64>:`.
pub fn content_digest(body: &[u8]) -> String {
    format!("sha-256=:{}:", B64.encode(Sha256::digest(body)))
}

/// Checks a `Content-Digest` field against `body`: every `sha-256` or `sha-512` member must
/// match and at least one must be present (other algorithms are ignored, RFC 9530 §2).
pub fn check_content_digest(value: &str, body: &[u8]) -> Result<(), SigRefusal> {
    let dict: Dictionary = Parser::new(value)
        .parse()
        .map_err(|e| SigRefusal { field: "content-digest", rule: format!("not a structured dictionary: {e}") })?;
    let mut known = 0;
    for (alg, entry) in &dict {
        let want: Vec<u8> = match alg.as_str() {
            "sha-256" => Sha256::digest(body).to_vec(),
            "sha-512" => Sha512::digest(body).to_vec(),
            _ => continue,
        };
        known += 1;
        let got = match entry {
            ListEntry::Item(i) => i.bare_item.as_byte_sequence(),
            ListEntry::InnerList(_) => None,
        };
        if got != Some(want.as_slice()) {
            return refuse("content-digest", format!("the {} digest does not match the body", alg.as_str()));
        }
    }
    if known == 0 {
        return refuse("content-digest", "needs a sha-256 or sha-512 digest of the body");
    }
    Ok(())
}

/// What a signer puts in `@signature-params` besides the components.
#[derive(Clone, Debug)]
pub struct SignWith<'a> {
    pub created: i64,
    pub expires: i64,
    pub nonce: Option<&'a str>,
    pub keyid: &'a str,
}

/// Signs `req` over `components` with the label `sig1`; returns the `Signature-Input` and
/// `Signature` field values. Parameter order: created, expires, nonce, keyid, alg.
pub fn sign(
    req: &RequestParts,
    components: &[&str],
    with: &SignWith<'_>,
    key: &SecretKey,
) -> Result<(String, String), SigRefusal> {
    let items = components.iter().map(|c| string_item(c)).collect::<Result<Vec<_>, _>>()?;
    let mut list = InnerList::new(items);
    let key_of = |k: &'static str| KeyRef::constant(k).to_owned();
    list.params.insert(key_of("created"), BareItem::Integer(int(with.created)?));
    list.params.insert(key_of("expires"), BareItem::Integer(int(with.expires)?));
    if let Some(n) = with.nonce {
        list.params.insert(key_of("nonce"), string_item(n)?.bare_item);
    }
    list.params.insert(key_of("keyid"), string_item(with.keyid)?.bare_item);
    list.params.insert(key_of("alg"), string_item(ALG)?.bare_item);
    let base = signature_base(req, &list)?;
    let signature = key.sign_raw(base.as_bytes());
    let input = format!("sig1={}", serialize_inner_list(&list));
    Ok((input, format!("sig1=:{}:", B64.encode(signature.0))))
}

/// Lifetime of the signatures [`signed_headers`] makes, in seconds (within [`SIGNATURE_LIFETIME_S_MAX`]).
pub const CLIENT_SIGNATURE_LIFETIME_S: i64 = 30;

/// The header fields that sign one request to a node under Credence's profile: `@method`,
/// `@path`, `@query` and, with a body, its RFC 9530 `Content-Digest`; `created` = `now_s`,
/// `expires` 30 s later, a fresh random `nonce` (so no two requests share a signature),
/// `keyid` and `alg`. `path_and_query` is the request target as sent (`/v1/x?a=b`).
/// Returns `(name, value)` pairs to add to the request.
pub fn signed_headers(
    method: &str,
    path_and_query: &str,
    body: Option<&[u8]>,
    keyid: &str,
    key: &SecretKey,
    now_s: i64,
) -> Result<Vec<(&'static str, String)>, SigRefusal> {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q.to_string())),
        None => (path_and_query, None),
    };
    let mut headers = Vec::new();
    let mut req = RequestParts { method: method.to_string(), path: path.to_string(), query, ..Default::default() };
    let mut components = vec!["@method", "@path", "@query"];
    if let Some(body) = body.filter(|b| !b.is_empty()) {
        let digest = content_digest(body);
        req.fields.push(("content-digest".into(), digest.clone()));
        headers.push(("content-digest", digest));
        components.push("content-digest");
    }
    let mut nonce = [0u8; 16];
    getrandom::fill(&mut nonce).map_err(|e| SigRefusal { field: "nonce", rule: format!("no randomness: {e}") })?;
    let nonce = hex::encode(nonce);
    let with = SignWith {
        created: now_s,
        expires: now_s.saturating_add(CLIENT_SIGNATURE_LIFETIME_S),
        nonce: Some(&nonce),
        keyid,
    };
    let (input, signature) = sign(&req, &components, &with, key)?;
    headers.push(("signature-input", input));
    headers.push(("signature", signature));
    Ok(headers)
}

fn int(v: i64) -> Result<sfv::Integer, SigRefusal> {
    sfv::Integer::try_from(v).map_err(|e| SigRefusal { field: "created", rule: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9421 Appendix B.1.4: the private key `test-key-ed25519` (PKCS#8; the seed is its last 32 bytes).
    const B14_PRIVATE: &str = "MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF";
    /// RFC 9421 Appendix B.1.4: its public key (SPKI; the key is its last 32 bytes).
    const B14_PUBLIC: &str = "MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=";

    fn last32(b64: &str) -> [u8; 32] {
        let der = B64.decode(b64).unwrap();
        der[der.len() - 32..].try_into().unwrap()
    }

    /// RFC 9421 Appendix B.2 `test-request` with the B.2.6 signature fields.
    fn b26_request() -> RequestParts {
        let fields = [
            ("host", "example.com"),
            ("date", "Tue, 20 Apr 2021 02:07:55 GMT"),
            ("content-type", "application/json"),
            (
                "content-digest",
                "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:",
            ),
            ("content-length", "18"),
            (
                "signature-input",
                "sig-b26=(\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\"",
            ),
            (
                "signature",
                "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:",
            ),
        ];
        RequestParts {
            method: "POST".into(),
            path: "/foo".into(),
            query: Some("param=Value&Pet=dog".into()),
            authority: Some("example.com".into()),
            fields: fields.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        }
    }

    #[test]
    fn the_rfc_9421_b26_ed25519_vector_verifies() {
        let req = b26_request();
        let parsed = parse(&req).unwrap();
        assert_eq!(
            parsed.base,
            "\"date\": Tue, 20 Apr 2021 02:07:55 GMT\n\"@method\": POST\n\"@path\": /foo\n\"@authority\": example.com\n\"content-type\": application/json\n\"content-length\": 18\n\"@signature-params\": (\"date\" \"@method\" \"@path\" \"@authority\" \"content-type\" \"content-length\");created=1618884473;keyid=\"test-key-ed25519\""
        );
        let public = PublicKey(last32(B14_PUBLIC));
        assert_eq!(SecretKey::from_seed(last32(B14_PRIVATE)).public(), public);
        verify(&parsed, &public).unwrap();
        // Ed25519 is deterministic: signing the same base with the RFC's key gives the RFC's signature.
        let again = SecretKey::from_seed(last32(B14_PRIVATE)).sign_raw(parsed.base.as_bytes());
        assert_eq!(again, parsed.signature);
        // The RFC's content digest (B.2) is the SHA-512 of its body.
        check_content_digest(&req.field("content-digest").unwrap(), b"{\"hello\": \"world\"}").unwrap();
        // One changed byte of a covered component breaks it.
        let mut other = req.clone();
        other.path = "/fooo".into();
        assert_eq!(verify(&parse(&other).unwrap(), &public).unwrap_err().field, "signature");
    }

    fn signed_get(now: i64, key: &SecretKey) -> RequestParts {
        let mut req = RequestParts {
            method: "GET".into(),
            path: "/v1/enterprises/91440300708461136T/attestations".into(),
            query: Some("purpose=loan-application".into()),
            authority: None,
            fields: vec![],
        };
        let with = SignWith { created: now, expires: now + 30, nonce: Some("n1"), keyid: "abcd" };
        let (input, sig) = sign(&req, &["@method", "@path", "@query"], &with, key).unwrap();
        req.fields.push(("signature-input".into(), input));
        req.fields.push(("signature".into(), sig));
        req
    }

    #[test]
    fn own_signatures_verify_and_the_profile_bounds_time() {
        let key = SecretKey::from_seed([5; 32]);
        let now = 1_700_000_000;
        let req = signed_get(now, &key);
        let p = parse(&req).unwrap();
        verify(&p, &key.public()).unwrap();
        check_profile(&p, false, now).unwrap();
        assert_eq!(p.params.keyid.as_deref(), Some("abcd"));
        assert_eq!(check_profile(&p, true, now).unwrap_err().rule, "must cover content-digest");
        assert_eq!(check_profile(&p, false, now - CLOCK_SKEW_S - 1).unwrap_err().field, "created");
        assert_eq!(check_profile(&p, false, now + 30 + CLOCK_SKEW_S + 1).unwrap_err().field, "expires");
        // Another request (a different query) does not verify.
        let mut other = req.clone();
        other.query = Some("purpose=post-loan-monitoring".into());
        assert!(verify(&parse(&other).unwrap(), &key.public()).is_err());
    }

    #[test]
    fn client_headers_verify_and_cover_the_body() {
        let key = SecretKey::from_seed([6; 32]);
        let now = 1_700_000_000;
        let target = "/v1/enterprises/914403001922038216/attestations?purpose=loan-application&limit=5";
        let body = b"{\"a\":1}";
        let headers = signed_headers("POST", target, Some(body), "kid", &key, now).unwrap();
        let (path, query) = target.split_once('?').unwrap();
        let req = RequestParts {
            method: "POST".into(),
            path: path.into(),
            query: Some(query.into()),
            authority: None,
            fields: headers.iter().map(|(n, v)| (n.to_string(), v.clone())).collect(),
        };
        let p = parse(&req).unwrap();
        verify(&p, &key.public()).unwrap();
        check_profile(&p, true, now).unwrap();
        check_content_digest(&req.field("content-digest").unwrap(), body).unwrap();
        // Two signatures of the same request differ (fresh nonce): no false replay.
        let again = signed_headers("POST", target, Some(body), "kid", &key, now).unwrap();
        assert_ne!(again.last(), headers.last());
    }

    #[test]
    fn digests_and_malformed_fields_are_refused_with_the_field() {
        assert!(check_content_digest(&content_digest(b"abc"), b"abc").is_ok());
        assert_eq!(check_content_digest(&content_digest(b"abc"), b"abd").unwrap_err().field, "content-digest");
        assert_eq!(check_content_digest("md5=:AAAA:", b"abc").unwrap_err().field, "content-digest");
        let mut req = signed_get(1, &SecretKey::from_seed([5; 32]));
        req.fields.retain(|(n, _)| n != "signature");
        assert_eq!(parse(&req).unwrap_err().field, "signature");
        req.fields.push(("signature".into(), "sig1=notbytes".into()));
        assert_eq!(parse(&req).unwrap_err().field, "signature");
        let mut two = signed_get(1, &SecretKey::from_seed([5; 32]));
        two.fields.push(("signature-input".into(), "sig2=(\"@method\");created=1".into()));
        assert!(parse(&two).unwrap_err().rule.contains("exactly one"));
    }
}
