//! Writes the seed corpora (`fuzz/corpus/<target>/`) from real encodings of the fixture's demo chain: `cargo run --example seeds` in `fuzz/`.
//!
//! Deterministic: the same chain seed gives byte-identical files, so re-running it
//! only changes the corpora when an encoding changes.

use std::path::Path;
use std::sync::Arc;

use credence_fuzz::fixture;
use credence_ledger::block;
use credence_ledger::export::ExportWriter;
use credence_ledger::vote::{BlockId, Proposal, Vote, VoteKind};
use credence_node::consensus::compact::{CompactItem, CompactProposal};
use credence_node::consensus::{Message, SignedProposal, SignedVote};
use credence_node::net::SyncResponse;
use credence_node::net::sync;
use credence_node::wire;

fn write(target: &str, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus").join(target);
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(name), bytes)
}

fn main() -> std::io::Result<()> {
    let f = fixture();
    let g = f.genesis();
    let keys = credence_ledger::demo::genesis(credence_fuzz::CHAIN_SEED, credence_fuzz::GENESIS_TIME_MS)
        .map_err(std::io::Error::other)?
        .1;
    let mut encoded = Vec::new();
    for (h, cb) in f.blocks.iter().enumerate() {
        let mut bytes = Vec::new();
        block::encode_certified(cb, &mut bytes);
        write("block", &format!("certified-{}", h + 1), &bytes)?;
        write("block", &format!("header-{}", h + 1), &cb.block.header.to_bytes())?;
        write("checkpoint", &format!("note-{}", h + 1), cb.certificate.to_note().as_bytes())?;
        write("checkpoint", &format!("text-{}", h + 1), cb.certificate.body.to_text().as_bytes())?;
        for (i, leaf) in cb.block.leaves.iter().enumerate() {
            write("attestation", &format!("block{}-{i}", h + 1), &leaf.bytes)?;
            write("decoder", &format!("block{}-{i}", h + 1), &leaf.bytes)?;
        }
        write("decoder", &format!("header-{}", h + 1), &cb.block.header.to_bytes())?;
        encoded.push(bytes);
    }
    for (i, v) in g.verifier_keys().iter().enumerate() {
        write("checkpoint", &format!("vkey-{i}"), v.to_vkey_string().as_bytes())?;
    }

    // Consensus messages: a proposal of block 1, a prevote for it and a nil precommit.
    let first = &f.blocks[0];
    let id = BlockId::of(&first.block.header);
    let proposer = g.validators().next().map(|m| m.name.clone()).unwrap_or_else(|| g.members[0].name.clone());
    let proposer_key = g.member_index(&proposer).map(|i| &keys[usize::from(i)]).unwrap_or(&keys[0]);
    let proposal = Proposal { height: 1, round: 0, block: id, valid_round: None };
    let signature = proposal.sign(&f.ctx.chain_id, proposer_key);
    let msg = Message::Proposal(SignedProposal { proposal, signature, block: Arc::new(first.block.clone()) });
    write("wire", "proposal", &wire::encode(&msg))?;
    // The same block as a compact proposal: the first record whole, the others by id.
    let items = (first.block.leaves.iter().enumerate())
        .map(|(i, l)| if i == 0 { CompactItem::Full(Box::new(l.clone())) } else { CompactItem::Id(l.id) })
        .collect();
    let compact = CompactProposal { proposal, signature, header: first.block.header.clone(), items };
    write("wire", "compact-proposal", &wire::encode_compact(&compact))?;
    for (name, kind, value) in [("prevote", VoteKind::Prevote, Some(id)), ("precommit-nil", VoteKind::Precommit, None)]
    {
        let vote = Vote { height: 1, round: 0, kind, value };
        let signature = vote.sign(&g.checkpoint_origin, &f.ctx.chain_id, proposer.as_str(), proposer_key);
        write("wire", name, &wire::encode(&Message::Vote(SignedVote { vote, validator: 0, signature })))?;
    }

    // Sync: a request, a response with every fixture block, an empty one.
    let req = credence_node::net::SyncRequest { from_height: 1, max_blocks: 3 };
    write("sync", "request", &sync::encode_request(&req))?;
    write("sync", "response-3", &sync::encode_response(&SyncResponse { blocks: encoded.clone() }))?;
    write("sync", "response-0", &sync::encode_response(&SyncResponse { blocks: Vec::new() }))?;

    // Export files: the fixture chain, and an empty chain.
    let mut w = ExportWriter::new(Vec::new(), &f.ctx.chain_id)?;
    for cb in &f.blocks {
        w.write_block(cb)?;
    }
    write("export", "chain-3", &w.finish()?)?;
    write("export", "chain-0", &ExportWriter::new(Vec::new(), &f.ctx.chain_id)?.finish()?)?;

    // A snapshot of the fixture chain at its head, signed by every validator.
    let mut store = credence_ledger::store::MemStore::new(g);
    let mut tip = f.genesis_tip();
    for cb in &f.blocks {
        let vb = credence_ledger::verify::verify_block(&f.ctx, &tip, &store, cb.clone()).map_err(std::io::Error::other)?;
        credence_ledger::store::Store::commit(&mut store, &vb).map_err(std::io::Error::other)?;
        tip.advance(&vb);
    }
    let (st, _) = credence_ledger::snapshot::state_statement(&store, g).map_err(std::io::Error::other)?;
    let signed: Vec<_> = g
        .verifier_keys()
        .iter()
        .map(|v| st.sign(&v.name, &credence_ledger::demo::member_key(credence_fuzz::CHAIN_SEED, &v.name)))
        .collect();
    let mut file = Vec::new();
    credence_ledger::snapshot::write_file(&store, g, &[], &signed, &mut file).map_err(std::io::Error::other)?;
    write("snapshot", "chain-3", &file)?;

    // Genesis: the fixture's and the repository's local-network genesis.
    write("genesis", "demo", g.to_toml().as_bytes())?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    write("genesis", "configs-genesis", &std::fs::read(root.join("configs/genesis.toml"))?)?;

    // Node configs: minimal and with every optional key.
    let minimal =
        "data_dir = \"data\"\ngenesis = \"genesis.toml\"\nkey = \"keys/a.key\"\np2p_listen = \"127.0.0.1:7001\"\n";
    write("config", "minimal", minimal.as_bytes())?;
    let full = credence_node::config::NodeConfig::from_toml(
        &format!("{minimal}peers = [\"127.0.0.1:7002\", \"[::1]:7003\"]\napi_listen = \"127.0.0.1:8080\"\n"),
        Path::new("/etc/credence"),
    )
    .map_err(std::io::Error::other)?;
    write("config", "full", full.to_toml(Path::new("/etc/credence")).as_bytes())?;
    write("config", "passphrase", format!("{minimal}key_passphrase_file = \"keys/pass\"\n").as_bytes())?;

    // Merkle targets read their choices from the bytes: a few spread-out starting points.
    for (i, seed) in
        [[0u8; 16], [0x55; 16], [0xff; 16], *b"\x10\x02\x00\x00\x07\x00\x00\x00\x03\x01\x02\x03\x04\x05\x06\x07"]
            .iter()
            .enumerate()
    {
        write("merkle_inclusion", &format!("seed-{i}"), seed)?;
        write("merkle_consistency", &format!("seed-{i}"), seed)?;
    }
    Ok(())
}
