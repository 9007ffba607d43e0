//! What goes into the server's driver task: one message per input of the
//! server core, plus the replies the caller waits for. A leaf module: the
//! handle sends these, the driver receives them, neither is imported here.

use std::time::Duration;

use bytes::Bytes;
use live_core::{Frame, HubError, PeerFault, SessionId};
use server_core::{BackplaneCommand, MetricsSnapshot, PersistFailure, Reloaded, ServerError};
use sync_core::{Response, SyncRequest};

use crate::outbox::Conn;

/// A reply slot.
pub(crate) type Reply<T> = async_channel::Sender<T>;

/// A sync request body as an HTTP route read it.
#[derive(Debug)]
pub(crate) enum SyncBody {
    /// The whole body (empty for GET).
    Read(Bytes),
    /// Longer than the limit.
    TooLarge { limit: usize },
    /// The transport failed while reading.
    Unreadable(String),
}

/// One message into the driver. Kept small (the larger inputs are boxed):
/// every connection's task holds one while it waits for room in the inbox,
/// so its size is paid per open connection.
pub(crate) enum Input<U> {
    /// A WebSocket connection authenticated as `user` was upgraded.
    Open {
        user: U,
        conn: Conn,
        /// From this machine (loopback): no per-connection message rate.
        local: bool,
        reply: Reply<SessionId>,
    },
    Frame {
        id: SessionId,
        frame: Frame,
    },
    TransportClosed {
        id: SessionId,
    },
    /// The WebSocket library refused what the peer sent.
    PeerFault {
        id: SessionId,
        fault: PeerFault,
    },
    /// A sync request over HTTP, as read: the core parses and authorizes it.
    HttpSync(Box<HttpSyncInput<U>>),
    /// A parsed, authorized sync request from server-side code.
    Sync {
        request: SyncRequest,
        reply: Reply<Response>,
    },
    Persisted(Box<Persisted>),
    Reloaded(Box<Reloaded>),
    /// Another node committed to this scope (`None`: maybe to any scope).
    StoreNotice(Option<String>),
    /// A broker link attached itself: backplane commands go to it.
    BrokerAttach {
        commands: async_channel::Sender<BackplaneCommand>,
    },
    /// A publish from another node, for local subscribers only.
    BrokerMessage {
        topic: String,
        data: Bytes,
    },
    /// The broker link reconnected.
    BrokerRestored,
    /// The broker link connected (`true`), or lost or could not get its
    /// connection (`false`).
    BrokerConnection(bool),
    /// A publication the broker numbered, on a topic whose history it keeps
    /// (boxed: every connection's frames travel as inputs too).
    BrokerNumbered(Box<Numbered>),
    /// The broker could not take an append: deliver it on this node only.
    BrokerAppendFailed {
        topic: String,
        data: Bytes,
    },
    /// Another node's session joined (`.2`) or left a topic (boxed).
    BrokerPresence(Box<(String, server_core::PresenceMember, bool)>),
    /// The broker's members of a topic (`None`: it could not be read).
    PresenceRead {
        request: u64,
        members: Option<Vec<server_core::PresenceMember>>,
    },
    /// The answer to a history read (`None`: the broker could not be read).
    HistoryRead {
        request: u64,
        read: Option<server_core::HistoryRead>,
    },
    /// A server-side command.
    Call(Box<Call>),
    /// Writers posted flush reports the driver asked to hear of at once
    /// (see [`crate::outbox::FlushBoard`]).
    Flushes,
    Shutdown {
        done: Reply<()>,
    },
}

/// A sync request over HTTP, as read.
pub(crate) struct HttpSyncInput<U> {
    pub(crate) user: U,
    pub(crate) method: http::Method,
    pub(crate) path: String,
    pub(crate) query: String,
    pub(crate) body: SyncBody,
    pub(crate) reply: Reply<Response>,
}

/// A store's report on a persist job.
pub(crate) struct Persisted {
    pub(crate) number: u64,
    pub(crate) result: Result<(), PersistFailure>,
    pub(crate) took: Duration,
}

/// A server-side command and where its result goes.
pub(crate) enum Call {
    Publish {
        topic: String,
        data: Bytes,
        reply: Reply<Result<usize, HubError>>,
    },
    Send {
        to: SessionId,
        topic: String,
        data: Bytes,
        reply: Reply<Result<bool, HubError>>,
    },
    Close {
        id: SessionId,
        code: u16,
        reason: String,
        reply: Reply<Result<(), HubError>>,
    },
    Subscribe {
        id: SessionId,
        topic: String,
        reply: Reply<Result<bool, HubError>>,
    },
    Unsubscribe {
        id: SessionId,
        topic: String,
        reply: Reply<Result<bool, HubError>>,
    },
    SessionCount {
        reply: Reply<usize>,
    },
    Trim {
        scope: String,
        before: u64,
        reply: Reply<Result<(), ServerError>>,
    },
    Metrics {
        reply: Reply<MetricsSnapshot>,
    },
}

/// A numbered publication from the broker.
pub(crate) struct Numbered {
    pub(crate) topic: String,
    pub(crate) epoch: String,
    pub(crate) offset: u64,
    pub(crate) data: Bytes,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_input_stays_small_since_every_connection_holds_one() {
        eprintln!(
            "Input<String> {} Output<String> {} Action {}",
            std::mem::size_of::<Input<String>>(),
            std::mem::size_of::<server_core::Output<String>>(),
            std::mem::size_of::<live_core::Action>()
        );
        assert!(std::mem::size_of::<Input<String>>() <= 72);
    }
}
