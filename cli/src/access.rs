//! Reading as someone (docs/ACCESS.md): `--access-key` signs a command's requests (RFC 9421), `--purpose`/`--consent` make a restricted read, and `credence keys access` delegates a new access key on the ledger.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use credence_ledger::access::{ACCESS_KEY_LIFETIME_MS_MAX, AccessKeyGrant, Purpose, Scope};
use credence_ledger::attestation::{AttestationBody, AttestationId, Claim};
use credence_ledger::genesis::Genesis;
use credence_ledger::sig::SecretKey;
use credence_node::keyfile::{self, AccessKeyFile, KdfParams};
use credence_node::runtime::now_ms;

use crate::http::Conn;
use crate::keys::PassphraseArgs;

/// Environment variable naming the access-key file when `--access-key` is not given.
pub const ACCESS_KEY_ENV: &str = "CREDENCE_ACCESS_KEY";

/// `--access-key`: who reads.
#[derive(Args, Debug, Clone, Default)]
pub struct AccessArgs {
    /// Sign every request with this access key (a file written by `credence keys access`);
    /// routes above public refuse unsigned requests with 401 (docs/ACCESS.md).
    #[arg(long, value_name = "FILE", env = ACCESS_KEY_ENV)]
    pub access_key: Option<PathBuf>,
    /// For an encrypted access-key file: read its passphrase from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub access_key_passphrase_env: Option<String>,
}

impl AccessArgs {
    /// The access key, if one is given.
    pub fn load(&self) -> Result<Option<AccessKeyFile>> {
        let Some(path) = &self.access_key else { return Ok(None) };
        let passphrase =
            PassphraseArgs { passphrase_env: self.access_key_passphrase_env.clone(), passphrase_file: None };
        let key = keyfile::read_access_key(path, passphrase.read()?.as_ref()).context("--access-key")?;
        Ok(Some(key))
    }

    /// A connection to `url` that signs with this access key (if any).
    pub fn connect(&self, url: &str) -> Result<Conn> {
        Ok(Conn::new(url)?.with_access(self.load()?))
    }
}

/// `--purpose` and `--consent`: a restricted read of an enterprise's facts.
#[derive(Args, Debug, Clone, Default)]
pub struct ReadArgs {
    /// Read the enterprise's facts for this purpose (a restricted read, logged on the ledger as
    /// a query record): loan-application, post-loan-monitoring, guarantee-review,
    /// risk-pool-claim, or supervision (regulators). Without it, facts are withheld.
    #[arg(long)]
    pub purpose: Option<String>,
    /// Read under this consent (its id); by default the node uses the live consent of the
    /// enterprise, your member and the purpose that lasts longest.
    #[arg(long, requires = "purpose")]
    pub consent: Option<String>,
}

impl ReadArgs {
    /// `&purpose=…&consent=…` for a request's query (empty without a purpose), checked here first.
    pub fn query(&self) -> Result<String> {
        let Some(p) = &self.purpose else { return Ok(String::new()) };
        if Purpose::parse(p).is_none() {
            bail!(
                "--purpose: '{p}' is not one of loan-application, post-loan-monitoring, guarantee-review, risk-pool-claim, supervision"
            );
        }
        let mut q = format!("&purpose={p}");
        if let Some(c) = &self.consent {
            credence_ledger::hash::Hash::from_hex("--consent", c)?;
            q.push_str(&format!("&consent={c}"));
        }
        Ok(q)
    }
}

/// The scopes `--scopes` names (comma-separated), ascending and without duplicates.
pub fn parse_scopes(list: &[String]) -> Result<Vec<Scope>> {
    let mut scopes = Vec::new();
    for s in list {
        let Some(scope) = Scope::parse(s.trim()) else {
            bail!("--scopes: '{s}' is not one of member, restricted, regulator");
        };
        scopes.push(scope);
    }
    if scopes.is_empty() {
        bail!("--scopes: name at least one of member, restricted, regulator");
    }
    scopes.sort();
    scopes.dedup();
    Ok(scopes)
}

/// What `credence keys access` asks for.
#[derive(Debug)]
pub struct GrantRequest<'a> {
    pub node: &'a str,
    pub genesis: &'a Genesis,
    /// The member's key, which signs the grant.
    pub member_key: &'a SecretKey,
    pub holder: &'a str,
    pub scopes: Vec<Scope>,
    pub days: u64,
    pub out: &'a Path,
    /// Encrypt the new access-key file with this passphrase.
    pub passphrase: Option<keyfile::Passphrase>,
}

/// Delegates a new access key: generates it, signs the grant with the member's key, submits
/// it, waits for its commit and writes the access-key file (mode 0600). Returns the grant's
/// id (the key's `keyid`) and the commit receipt.
pub fn grant(r: GrantRequest<'_>) -> Result<(AttestationId, serde_json::Value)> {
    if r.out.exists() {
        bail!("--out: {} already exists", r.out.display());
    }
    let me = crate::attest::member_in_force(r.genesis, r.node, r.member_key)?;
    let key = SecretKey::generate();
    let claim = Claim::AccessKey(AccessKeyGrant {
        holder: r.holder.to_string(),
        key: key.public(),
        scopes: r.scopes,
        expires_at_ms: crate::attest::expiry_ms("--days", r.days, ACCESS_KEY_LIFETIME_MS_MAX)?,
    });
    claim.check_fields()?;
    let sequence = crate::attest::next_sequence(r.node, &me)?;
    let body = AttestationBody { attester: me.clone(), sequence, issued_at_ms: now_ms(), claim };
    let a = body.sign(r.member_key, &r.genesis.hash());
    let keyid = a.id();
    let receipt = crate::attest::submit(r.node, &a, true)?;
    let comment = format!(
        "Credence access key of member {me} for holder {}; keyid is its grant's id. Keep secret; mode 0600.",
        r.holder
    );
    let text = match &r.passphrase {
        Some(p) => keyfile::access_key_encrypted_text(&comment, &keyid, &key, p, KdfParams::default())?,
        None => keyfile::access_key_text(&comment, &keyid, &key),
    };
    keyfile::write_private(r.out, &text)?;
    Ok((keyid, receipt))
}

/// Records, without waiting, consents by the member of `key` for `recipient` to read all facts
/// of each of `enterprises` for loan applications, for a year; `evidence` stands for the
/// signed authorisation of each (local chains only: `credence dev`, `credence testnet`).
pub fn record_consents(
    node: &str,
    genesis: &Genesis,
    key: &SecretKey,
    recipient: &credence_ledger::ids::MemberName,
    enterprises: &[credence_ledger::ids::Uscc],
) -> Result<usize> {
    use credence_ledger::access::{CONSENT_LIFETIME_MS_MAX, Consent, FactKind};
    let me = crate::attest::member_of(genesis, key)?;
    let first = crate::attest::next_sequence(node, &me)?;
    for (sequence, e) in (first..).zip(enterprises) {
        let evidence =
            credence_ledger::hash::Hash::digest(&[
                format!("local demo authorisation (授权书) of {e} for {recipient}").as_bytes()
            ]);
        let claim = Claim::Consent(Consent {
            enterprise: *e,
            recipient: recipient.clone(),
            purpose: Purpose::LoanApplication,
            scope: FactKind::ALL.to_vec(),
            expires_at_ms: crate::attest::expiry_ms("consent", 365, CONSENT_LIFETIME_MS_MAX)?,
            evidence,
        });
        let body = AttestationBody { attester: me.clone(), sequence, issued_at_ms: now_ms(), claim };
        crate::attest::submit(node, &body.sign(key, &genesis.hash()), false)?;
    }
    Ok(enterprises.len())
}
