//! Wire types of the sync protocol (serde), shared by server and client.

mod error_code;
mod messages;
mod timestamp;

pub use error_code::{ErrorBody, ErrorCode};
pub use messages::{
    Change, DEFAULT_SCOPE, Mutation, MutationResult, PokeData, PullRequest, PullResponse,
    PushRequest, PushResponse, SnapshotRequest, SnapshotResponse, poke_topic, scope_of_poke_topic,
};
pub use timestamp::Timestamp;
