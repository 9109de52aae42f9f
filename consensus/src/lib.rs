//! Credence consensus: the Tendermint machine (arXiv 1807.04938, Algorithm 1, `step(input) -> effects`) and the replica core around it that the node and the simulator both host.
//!
//! Nothing here touches a socket, a clock, a disk or randomness (the crate's
//! dependency graph has no runtime or network crate, and `clippy.toml` bans the
//! clock and `std::fs`): time arrives as an input, the network as messages, and
//! everything else leaves as an effect the host carries out in order.
//!
//! * [`Consensus`] is the machine; [`replica::Replica`] hosts it with the mempool,
//!   block building and validation, commit, sync decisions and evidence;
//!   [`sim`] runs replicas on a seeded faulty network; [`sync`] serves blocks.
//! * Votes are domain-separated signatures bound to the genesis hash; a non-nil
//!   precommit is the validator's C2SP checkpoint signature, so 2f+1 precommits are
//!   the block's certificate ([`credence_ledger::vote`]).
//! * [`SignState`] is the durable double-sign guard: persisted before every signature
//!   leaves, it keeps a restarted validator from signing a conflicting statement.
//! * Vote bookkeeping keeps one vote per validator, round and kind; a second,
//!   different one is an equivocation and becomes [`Effect::Evidence`].

mod check;
pub mod compact;
pub mod evidence;
mod guard;
mod machine;
pub mod mempool;
pub mod replica;
pub mod sim;
pub mod sync;
mod types;
mod votes;

pub use guard::{SIGN_STATE_BYTES_MAX, SIGNED_VOTES_MAX, SignState, SignStateError};
pub use machine::{Consensus, FUTURE_MESSAGES_PER_VALIDATOR, PROPOSALS_PER_ROUND_MAX};
pub use types::{
    Context, Effect, Input, Message, MessageError, SignedProposal, SignedVote, Signer, Step, Timeout, ValidatorIndex,
    ValidatorInfo,
};
pub use votes::{CATCHUP_ROUNDS_PER_VALIDATOR, VOTES_PER_SLOT_MAX};
