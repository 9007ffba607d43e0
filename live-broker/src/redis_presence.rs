//! Presence in Redis: per topic a sorted set `live:p:<topic>` whose members
//! are `{"session","user"}` and whose scores are the instant (Redis's clock,
//! ms) the entry expires. A node adds its sessions' entries as they join,
//! removes them as they leave and refreshes them every [`REFRESH`]; entries
//! of a node that stopped refreshing (it died) are left out of reads after
//! [`EXPIRY`] and dropped by them. Joins and leaves also go to the topic's
//! channel for the other nodes' watchers.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use adapter_common::backplane::{PresenceMember, decode_member, encode_member, encode_presence};
use redis::aio::MultiplexedConnection;
use redis::{RedisResult, Value};

use crate::redis_history::eval;

/// How often a node refreshes its sessions' entries.
pub(crate) const REFRESH: Duration = Duration::from_secs(10);
/// How long an entry lives without a refresh.
pub(crate) const EXPIRY: Duration = Duration::from_secs(30);

/// KEYS: set, channel. ARGV: lifetime ms, message ('' for none), members.
/// Adds or refreshes the members, then publishes the message.
const TOUCH: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i = 3, #ARGV do
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], ttl * 2)
if ARGV[2] ~= '' then redis.call('PUBLISH', KEYS[2], ARGV[2]) end
return 1
";

/// KEYS: set. Drops the expired entries and returns the others.
const READ: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
return redis.call('ZRANGE', KEYS[1], 0, -1)
";

fn key(topic: &str) -> String {
    format!("live:p:{topic}")
}

/// This node's members per topic, and the loaded scripts.
#[derive(Default)]
pub(crate) struct Presence {
    members: BTreeMap<String, BTreeSet<String>>,
    touch: Option<String>,
    read: Option<String>,
}

impl Presence {
    /// Records a local join or leave (also while Redis is unreachable, so
    /// the next refresh carries it).
    pub(crate) fn track(&mut self, topic: &str, member: &PresenceMember, joined: bool) {
        let entry = encode_member(member);
        if joined {
            self.members
                .entry(topic.to_owned())
                .or_default()
                .insert(entry);
        } else if let Some(set) = self.members.get_mut(topic) {
            set.remove(&entry);
            if set.is_empty() {
                self.members.remove(topic);
            }
        }
    }

    /// Writes a local join or leave and tells the other nodes on `channel`.
    pub(crate) async fn change(
        &mut self,
        conn: &mut MultiplexedConnection,
        node: &str,
        topic: &str,
        channel: String,
        member: &PresenceMember,
        joined: bool,
    ) -> RedisResult<()> {
        self.track(topic, member, joined);
        let message = encode_presence(node, joined, member);
        let entry = encode_member(member);
        if joined {
            let args = [lifetime_ms().into_bytes(), message, entry.into_bytes()];
            eval(conn, &mut self.touch, TOUCH, &[key(topic), channel], &args)
                .await
                .map(|_| ())
        } else {
            redis::pipe()
                .atomic()
                .zrem(key(topic), entry)
                .ignore()
                .publish(channel, message)
                .ignore()
                .query_async(conn)
                .await
        }
    }

    /// Refreshes every entry of this node.
    pub(crate) async fn refresh(
        &mut self,
        conn: &mut MultiplexedConnection,
        channel: impl Fn(&str) -> String,
    ) -> RedisResult<()> {
        let all: Vec<(String, Vec<String>)> = self
            .members
            .iter()
            .map(|(t, m)| (t.clone(), m.iter().cloned().collect()))
            .collect();
        for (topic, members) in all {
            let mut args = vec![lifetime_ms().into_bytes(), Vec::new()];
            args.extend(members.into_iter().map(String::into_bytes));
            eval(
                conn,
                &mut self.touch,
                TOUCH,
                &[key(&topic), channel(&topic)],
                &args,
            )
            .await?;
        }
        Ok(())
    }

    /// Every node's members of `topic`.
    pub(crate) async fn read(
        &mut self,
        conn: &mut MultiplexedConnection,
        topic: &str,
    ) -> RedisResult<Vec<PresenceMember>> {
        let value = eval(conn, &mut self.read, READ, &[key(topic)], &[]).await?;
        let Value::Array(items) = value else {
            return Ok(Vec::new());
        };
        Ok(items
            .into_iter()
            .filter_map(|v| match v {
                Value::BulkString(b) => decode_member(&b),
                _ => None,
            })
            .collect())
    }
}

fn lifetime_ms() -> String {
    EXPIRY.as_millis().to_string()
}
