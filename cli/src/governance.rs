//! `credence governance`: propose and approve changes of members, keys, roles, validators and consensus parameters, rotate one's own key, and show the governance state (`status`, `list`) from a node's `GET /v1/governance`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use credence_ledger::attestation::{Claim, GovernanceApproval, GovernanceProposal, KeyRotation};
use credence_ledger::genesis::{ConsensusParams, Role};
use credence_ledger::governance::{self, Change, MemberKey, PROPOSAL_TTL_MS_MAX};
use credence_ledger::hash::{Hash, HashOf};
use credence_ledger::ids::MemberName;
use credence_ledger::sig::PublicKey;
use credence_ledger::witness::WitnessKey;
use credence_node::runtime::now_ms;
use serde_json::Value;

use crate::attest::{self, Common};
use crate::http;

/// A proposal's default life when `--expires-in-hours` is not given (7 days).
const EXPIRES_IN_HOURS_DEFAULT: u64 = 7 * 24;

#[derive(Subcommand, Debug)]
pub enum GovernanceCommand {
    /// Propose a change (validators only); the proposal counts as the proposer's approval.
    Propose(ProposeArgs),
    /// Approve an open proposal (validators only).
    Approve(ApproveArgs),
    /// Replace your own key: signed by the current key, with the new key's proof of possession.
    RotateKey(RotateArgs),
    /// What is in force at the next height: validators, members and their keys, parameters.
    Status(ShowArgs),
    /// Open proposals with their approvals, changes waiting for their height, changes applied and the validator-set history.
    List(ShowArgs),
}

#[derive(Args, Debug)]
pub struct ProposeArgs {
    #[command(subcommand)]
    change: ChangeArg,
    /// Approvals after this many hours (block time) are refused; at most 720 (30 days).
    #[arg(long, global = true, default_value_t = EXPIRES_IN_HOURS_DEFAULT)]
    expires_in_hours: u64,
    #[command(flatten)]
    common: Common,
}

#[derive(Subcommand, Debug)]
enum ChangeArg {
    /// Add a member (a bank, an appraiser...) with its public key, roles, and whether it validates.
    AddMember {
        #[arg(long)]
        name: String,
        /// The member's Ed25519 public key, 64 hex digits (`credence keys show`).
        #[arg(long)]
        public_key: String,
        /// Comma-separated: bank, service-centre, appraiser, risk-pool.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        #[arg(long)]
        validator: bool,
    },
    /// Remove a member: its records are refused from the activation height; a validator leaves the set.
    RemoveMember {
        #[arg(long)]
        name: String,
    },
    /// Set a member's roles and whether it validates.
    SetRoles {
        #[arg(long)]
        name: String,
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        #[arg(long)]
        validator: bool,
    },
    /// Revoke a compromised key: records signed with it from the activation height are refused; the member signs with the replacement.
    RevokeKey {
        #[arg(long)]
        name: String,
        /// The compromised key (the member's key in force), 64 hex digits.
        #[arg(long)]
        revoked_key: String,
        /// The key that replaces it, 64 hex digits.
        #[arg(long)]
        replacement: String,
    },
    /// New consensus parameters (block limits no larger than the genesis values).
    SetConsensus {
        #[arg(long)]
        block_records_max: u32,
        #[arg(long)]
        block_bytes_max: u32,
        #[arg(long)]
        timeout_propose_ms: u64,
        #[arg(long)]
        timeout_prevote_ms: u64,
        #[arg(long)]
        timeout_precommit_ms: u64,
        #[arg(long)]
        timeout_delta_ms: u64,
    },
    /// Name an outside witness (C2SP tlog-witness): from the activation height every node submits
    /// each new checkpoint to it and keeps and serves its cosignatures.
    AddWitness {
        /// Its C2SP verifier key `name+keyid+base64`, as `credence witness` prints it.
        #[arg(long)]
        witness: String,
        /// Where it serves `POST <url>/add-checkpoint`: `http://host:port[/prefix]`.
        #[arg(long)]
        url: String,
    },
    /// Stop submitting checkpoints to a witness in force (genesis's or governance's), from the activation height.
    RemoveWitness {
        /// Its key name.
        #[arg(long)]
        name: String,
    },
}

#[derive(Args, Debug)]
pub struct ApproveArgs {
    /// The proposal's id (64 hex digits; `credence governance list`).
    #[arg(long)]
    proposal: String,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
pub struct RotateArgs {
    /// The new key file (`credence keys generate`); --key is the current one.
    #[arg(long)]
    new_key: PathBuf,
    #[command(flatten)]
    common: Common,
}

#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The node's API.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    node: String,
    /// Read this data directory offline instead of a node (a stopped node's, or a copy an
    /// auditor verified with `credence verify --data-dir`).
    #[arg(long, conflicts_with = "node")]
    data_dir: Option<PathBuf>,
    /// Print the node's JSON instead of tables.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: &GovernanceCommand) -> Result<ExitCode> {
    match cmd {
        GovernanceCommand::Propose(a) => propose(a),
        GovernanceCommand::Approve(a) => approve(a),
        GovernanceCommand::RotateKey(a) => rotate(a),
        GovernanceCommand::Status(a) => show(a, false),
        GovernanceCommand::List(a) => show(a, true),
    }
}

fn key(common: &Common) -> Result<credence_ledger::sig::SecretKey> {
    let path = common.key.as_ref().context("--key: the member's key file is required")?;
    let passphrase = crate::keys::PassphraseArgs {
        passphrase_env: common.passphrase_env.clone(),
        passphrase_file: common.passphrase_file.clone(),
    };
    crate::keys::read_key(path, &passphrase)
}

fn public_key(field: &'static str, hex_text: &str) -> Result<MemberKey> {
    let bytes = hex::decode(hex_text).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
    let Some(bytes) = bytes else { bail!("{field}: must be an Ed25519 public key of 64 hex digits") };
    Ok(MemberKey::Ed25519(PublicKey(bytes)))
}

fn roles(roles: &[String]) -> Result<Vec<Role>> {
    let mut out = roles
        .iter()
        .filter(|r| !r.is_empty())
        .map(|r| {
            Role::parse(r)
                .with_context(|| format!("--roles: '{r}' is not one of bank, service-centre, appraiser, risk-pool"))
        })
        .collect::<Result<Vec<Role>>>()?;
    out.sort();
    out.dedup();
    Ok(out)
}

fn change(c: &ChangeArg) -> Result<Change> {
    let name = |n: &str| MemberName::parse("--name", n);
    Ok(match c {
        ChangeArg::AddMember { name: n, public_key: k, roles: r, validator } => Change::AddMember {
            name: name(n)?,
            key: public_key("--public-key", k)?,
            roles: roles(r)?,
            validator: *validator,
        },
        ChangeArg::RemoveMember { name: n } => Change::RemoveMember { name: name(n)? },
        ChangeArg::SetRoles { name: n, roles: r, validator } => {
            Change::SetRoles { name: name(n)?, roles: roles(r)?, validator: *validator }
        }
        ChangeArg::RevokeKey { name: n, revoked_key, replacement } => Change::RevokeKey {
            name: name(n)?,
            key: public_key("--revoked-key", revoked_key)?,
            replacement: public_key("--replacement", replacement)?,
        },
        ChangeArg::SetConsensus {
            block_records_max,
            block_bytes_max,
            timeout_propose_ms,
            timeout_prevote_ms,
            timeout_precommit_ms,
            timeout_delta_ms,
        } => Change::SetConsensus(ConsensusParams {
            block_records_max: *block_records_max,
            block_bytes_max: *block_bytes_max,
            timeout_propose_ms: *timeout_propose_ms,
            timeout_prevote_ms: *timeout_prevote_ms,
            timeout_precommit_ms: *timeout_precommit_ms,
            timeout_delta_ms: *timeout_delta_ms,
        }),
        ChangeArg::AddWitness { witness, url } => {
            let w = WitnessKey::parse_vkey(witness).map_err(|e| anyhow::anyhow!("--witness: {e}"))?;
            Change::AddWitness { name: w.name, key: w.key, url: url.clone() }
        }
        ChangeArg::RemoveWitness { name } => Change::RemoveWitness { name: name.clone() },
    })
}

fn propose(a: &ProposeArgs) -> Result<ExitCode> {
    let change = change(&a.change)?;
    let ttl_ms = a.expires_in_hours.saturating_mul(3_600_000);
    if ttl_ms == 0 || ttl_ms > PROPOSAL_TTL_MS_MAX {
        bail!("--expires-in-hours: must be between 1 and {}", PROPOSAL_TTL_MS_MAX / 3_600_000);
    }
    let claim = Claim::GovernanceProposal(Box::new(GovernanceProposal { change, expires_at_ms: now_ms() + ttl_ms }));
    claim.check_fields()?;
    let c = &a.common;
    let key = key(c)?;
    let genesis = attest::genesis(c)?;
    let me = attest::member_in_force(&genesis, &c.node, &key)?;
    attest::sign_and_submit(c, &genesis, &key, me, claim, &[])
}

fn approve(a: &ApproveArgs) -> Result<ExitCode> {
    let proposal = HashOf::from_hash(Hash::from_hex("--proposal", &a.proposal)?);
    let c = &a.common;
    let key = key(c)?;
    let genesis = attest::genesis(c)?;
    let me = attest::member_in_force(&genesis, &c.node, &key)?;
    attest::sign_and_submit(c, &genesis, &key, me, Claim::GovernanceApproval(GovernanceApproval { proposal }), &[])
}

fn rotate(a: &RotateArgs) -> Result<ExitCode> {
    let c = &a.common;
    let old = key(c)?;
    let passphrase = crate::keys::PassphraseArgs {
        passphrase_env: c.passphrase_env.clone(),
        passphrase_file: c.passphrase_file.clone(),
    };
    let new = crate::keys::read_key(&a.new_key, &passphrase)?;
    let genesis = attest::genesis(c)?;
    let me = attest::member_in_force(&genesis, &c.node, &old)?;
    let possession = governance::sign_possession(&new, &genesis.hash(), &me, &MemberKey::Ed25519(old.public()));
    let claim = Claim::KeyRotation(KeyRotation { new_key: MemberKey::Ed25519(new.public()), possession });
    claim.check_fields()?;
    attest::sign_and_submit(c, &genesis, &old, me, claim, &[])
}

fn fetch(node: &str) -> Result<Value> {
    let r = http::get(node, "/v1/governance")?;
    if r.status != 200 {
        bail!("the node answered HTTP {}: {}", r.status, r.text());
    }
    r.json()
}

fn show(a: &ShowArgs, list: bool) -> Result<ExitCode> {
    let (url, _local) = crate::local::endpoint(&a.node, a.data_dir.as_deref())?;
    let v = fetch(&url)?;
    if a.json {
        println!("{v}");
        return Ok(ExitCode::SUCCESS);
    }
    print!("{}", if list { list_text(&v) } else { status_text(&v) });
    Ok(ExitCode::SUCCESS)
}

fn s(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn short(key: &Value) -> String {
    let k = s(key);
    if k.len() > 16 { format!("{}…", &k[..16]) } else { k }
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// `status`: what is in force at the next height.
fn status_text(v: &Value) -> String {
    let mut out = format!(
        "in force at height {} (head {})\nvalidators  {} ({}; quorum {})\nset hash    {}\n\n",
        s(&v["in_force_at"]),
        s(&v["height"]),
        array(&v["validators"]).len(),
        array(&v["validators"]).iter().map(s).collect::<Vec<_>>().join(", "),
        s(&v["quorum"]),
        s(&v["validator_set_hash"]),
    );
    out.push_str(&format!(
        "{:<4} {:<24} {:<18} {:<9} {:<8} {}\n",
        "idx", "member", "key", "validator", "status", "roles"
    ));
    for m in array(&v["members"]) {
        let status = match m["removed_from"].as_u64() {
            Some(h) => format!("removed@{h}"),
            None => "active".into(),
        };
        let roles = array(&m["roles"]).iter().map(s).collect::<Vec<_>>().join(",");
        out.push_str(&format!(
            "{:<4} {:<24} {:<18} {:<9} {:<8} {}\n",
            s(&m["index"]),
            s(&m["name"]),
            short(&m["key"]),
            if m["validator"] == true { "yes" } else { "no" },
            status,
            roles
        ));
    }
    let witnesses = array(&v["witnesses"]);
    out.push_str(&format!("\nwitnesses in force {}\n", witnesses.len()));
    for w in witnesses {
        out.push_str(&format!("  {}  {}  since {}\n", s(&w["vkey"]), s(&w["url"]), s(&w["from_height"])));
    }
    out.push_str(&format!(
        "\nopen proposals {}, changes waiting for their height {}\n",
        array(&v["proposals"]).len(),
        array(&v["scheduled"]).len()
    ));
    out
}

fn change_text(c: &Value) -> String {
    let mut parts = vec![s(&c["kind"])];
    for field in ["member", "witness", "key", "replacement", "roles", "validator", "params", "url"] {
        if !c[field].is_null() {
            let value = if field == "key" || field == "replacement" { short(&c[field]) } else { s(&c[field]) };
            parts.push(format!("{field}={value}"));
        }
    }
    parts.join(" ")
}

/// `list`: proposals, scheduled and applied changes, validator-set history.
fn list_text(v: &Value) -> String {
    let mut out = String::from("open proposals\n");
    out.push_str(&format!("  {:<64} {:<8} {:<9} {:<16} {}\n", "id", "height", "approvals", "proposer", "change"));
    for p in array(&v["proposals"]) {
        out.push_str(&format!(
            "  {:<64} {:<8} {:<9} {:<16} {}\n",
            s(&p["id"]),
            s(&p["height"]),
            format!("{}/{}", s(&p["approvals_counted"]), s(&p["approvals_needed"])),
            s(&p["proposer"]),
            change_text(&p["change"])
        ));
    }
    for (title, key) in [("waiting for their height", "scheduled"), ("applied", "applied")] {
        out.push_str(&format!(
            "\n{title}\n  {:<10} {:<12} {:<64} {}\n",
            "at height", "completed at", "record", "change"
        ));
        for c in array(&v[key]) {
            out.push_str(&format!(
                "  {:<10} {:<12} {:<64} {}\n",
                s(&c["at_height"]),
                s(&c["completed_at"]),
                s(&c["record"]),
                change_text(&c["change"])
            ));
        }
    }
    out.push_str("\nwitnesses (every term)\n");
    for w in array(&v["witness_history"]) {
        let until = if w["until_height"].is_null() {
            "in force".to_owned()
        } else {
            format!("until {}", s(&w["until_height"]))
        };
        out.push_str(&format!(
            "  from height {:<8} {:<10} {}  {}\n",
            s(&w["from_height"]),
            until,
            s(&w["vkey"]),
            s(&w["url"])
        ));
    }
    out.push_str("\nvalidator sets\n");
    for e in array(&v["epochs"]) {
        out.push_str(&format!(
            "  from height {:<8} {} [{}]\n",
            s(&e["from_height"]),
            short(&e["set_hash"]),
            array(&e["validators"]).iter().map(s).collect::<Vec<_>>().join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_parse_with_errors_naming_the_flag() {
        let k = "11".repeat(32);
        let c = change(&ChangeArg::AddMember {
            name: "bank-c".into(),
            public_key: k.clone(),
            roles: vec!["risk-pool".into(), "bank".into(), "bank".into()],
            validator: true,
        })
        .unwrap();
        let Change::AddMember { roles, validator, .. } = &c else { panic!("{c:?}") };
        assert_eq!(roles, &[Role::Bank, Role::RiskPool], "sorted and deduplicated, as the field rule wants");
        assert!(*validator);
        let e = change(&ChangeArg::AddMember {
            name: "bank-c".into(),
            public_key: "xyz".into(),
            roles: vec![],
            validator: false,
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("--public-key:"), "{e}");
        let e = change(&ChangeArg::SetRoles { name: "bank-c".into(), roles: vec!["pilot".into()], validator: false })
            .unwrap_err();
        assert!(e.to_string().starts_with("--roles:"), "{e}");
        let e = change(&ChangeArg::RemoveMember { name: "Bad Name".into() }).unwrap_err();
        assert!(e.to_string().contains("--name"), "{e}");
        // A witness in the vkey form `credence witness` prints.
        let w = WitnessKey {
            name: "witness.example/w1".into(),
            key: credence_ledger::sig::SecretKey::from_seed([9; 32]).public(),
        };
        let c =
            change(&ChangeArg::AddWitness { witness: w.to_vkey_string(), url: "http://127.0.0.1:9".into() }).unwrap();
        assert_eq!(c, Change::AddWitness { name: w.name.clone(), key: w.key, url: "http://127.0.0.1:9".into() });
        let e =
            change(&ChangeArg::AddWitness { witness: "w+00000000+AAAA".into(), url: "http://x".into() }).unwrap_err();
        assert!(e.to_string().starts_with("--witness:"), "{e}");
        let c = change(&ChangeArg::RemoveWitness { name: w.name.clone() }).unwrap();
        assert_eq!(c, Change::RemoveWitness { name: w.name });
    }

    #[test]
    fn tables_show_members_proposals_and_history() {
        let v = json!({
            "height": 9, "in_force_at": 10, "validators": ["bank-a", "bank-b"], "quorum": 2,
            "validator_set_hash": "ab".repeat(32),
            "members": [
                {"index": 0, "name": "bank-a", "key": "cd".repeat(32), "validator": true, "removed_from": null, "roles": ["bank"]},
                {"index": 1, "name": "centre-x", "key": "ef".repeat(32), "validator": false, "removed_from": 7, "roles": []},
            ],
            "proposals": [{"id": "12".repeat(32), "height": 8, "approvals_counted": 1, "approvals_needed": 2,
                "proposer": "bank-a", "change": {"kind": "remove-member", "member": "bank-b"}}],
            "scheduled": [], "applied": [{"at_height": 7, "completed_at": 5, "record": "34".repeat(32),
                "change": {"kind": "remove-member", "member": "centre-x"}}],
            "epochs": [{"from_height": 1, "set_hash": "ab".repeat(32), "validators": ["bank-a", "bank-b"]}],
        });
        let st = status_text(&v);
        assert!(st.contains("in force at height 10 (head 9)"), "{st}");
        assert!(st.contains("removed@7"), "{st}");
        assert!(st.contains("open proposals 1"), "{st}");
        let l = list_text(&v);
        assert!(l.contains("1/2"), "{l}");
        assert!(l.contains("remove-member member=bank-b"), "{l}");
        assert!(l.contains("remove-member member=centre-x"), "{l}");
        assert!(l.contains("from height 1"), "{l}");
    }
}
