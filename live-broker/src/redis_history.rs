//! History in Redis: per topic a counter `live:hn:<topic>` (the latest
//! offset), an epoch `live:he:<topic>` and a stream `live:hs:<topic>` whose
//! entry ids are `<offset>-0` (fields `d`: the data, `t`: the append time in
//! Redis's clock, ms). One Lua script numbers, keeps and publishes a
//! publication atomically, so every node sees the offsets in order on the
//! topic's channel; another reads the epoch, the latest offset and the
//! entries after a position in one go. With a TTL every key expires that
//! long after the topic's latest publication (the next one starts a new
//! epoch), and the read leaves out entries older than it.

use adapter_common::backplane::{BackplaneCommand, HistoryLimits, HistoryRead};
use bytes::Bytes;
use redis::aio::MultiplexedConnection;
use redis::{RedisResult, Value};

/// KEYS: counter, epoch, stream, channel. ARGV: data, size, ttl ms (0:
/// none), an epoch for a topic that has none. Returns the offset.
const APPEND: &str = r"
local epoch = redis.call('GET', KEYS[2])
if not epoch then
  epoch = ARGV[4]
  redis.call('SET', KEYS[2], epoch)
  redis.call('DEL', KEYS[1], KEYS[3])
end
local offset = redis.call('INCR', KEYS[1])
local size = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
if size > 0 then
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('XADD', KEYS[3], 'MAXLEN', size, offset .. '-0', 'd', ARGV[1], 't', ms)
end
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
  redis.call('PEXPIRE', KEYS[2], ttl)
  if size > 0 then redis.call('PEXPIRE', KEYS[3], ttl) end
end
redis.call('PUBLISH', KEYS[4], '#' .. epoch .. ' ' .. offset .. '\n' .. ARGV[1])
return offset
";

/// KEYS: counter, epoch, stream. ARGV: after (-1: the position only), ttl
/// ms (0: none), an epoch for a topic that has none. Returns
/// `{epoch, last, offset1, data1, offset2, data2, ...}`.
const READ: &str = r"
local epoch = redis.call('GET', KEYS[2])
local ttl = tonumber(ARGV[2])
if not epoch then
  epoch = ARGV[3]
  redis.call('SET', KEYS[2], epoch)
  redis.call('DEL', KEYS[1], KEYS[3])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
end
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
local out = {epoch, last}
local after = tonumber(ARGV[1])
if after >= 0 and after < last then
  local now = nil
  if ttl > 0 then
    local t = redis.call('TIME')
    now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  for _, e in ipairs(redis.call('XRANGE', KEYS[3], (after + 1) .. '-0', '+')) do
    local d, t = nil, nil
    local f = e[2]
    for i = 1, #f, 2 do
      if f[i] == 'd' then d = f[i + 1] elseif f[i] == 't' then t = tonumber(f[i + 1]) end
    end
    if d and (now == nil or t == nil or t + ttl > now) then
      table.insert(out, string.match(e[1], '^(%d+)'))
      table.insert(out, d)
    end
  end
end
return out
";

/// The two scripts, loaded once per connection and again when Redis lost
/// them (`NOSCRIPT`).
pub(crate) struct Scripts {
    append: Option<String>,
    read: Option<String>,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            append: None,
            read: None,
        }
    }
}

/// Runs `body` with EVALSHA, loading it first if needed or lost.
pub(crate) async fn eval(
    conn: &mut MultiplexedConnection,
    sha: &mut Option<String>,
    body: &str,
    keys: &[String],
    args: &[Vec<u8>],
) -> RedisResult<Value> {
    for attempt in 0..2 {
        let hash = match sha {
            Some(h) => h.clone(),
            None => {
                let h: String = redis::cmd("SCRIPT")
                    .arg("LOAD")
                    .arg(body)
                    .query_async(conn)
                    .await?;
                *sha = Some(h.clone());
                h
            }
        };
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(hash).arg(keys.len()).arg(keys).arg(args);
        match cmd.query_async::<Value>(conn).await {
            Err(e) if e.kind() == redis::ErrorKind::NoScriptError && attempt == 0 => {
                *sha = None;
            }
            other => return other,
        }
    }
    Err(redis::RedisError::from((
        redis::ErrorKind::NoScriptError,
        "script could not be loaded",
    )))
}

fn keys(topic: &str) -> [String; 3] {
    [
        format!("live:hn:{topic}"),
        format!("live:he:{topic}"),
        format!("live:hs:{topic}"),
    ]
}

fn ttl_ms(limits: &HistoryLimits) -> u64 {
    limits.ttl.map_or(0, |t| {
        u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1)
    })
}

/// Numbers, keeps and publishes one publication on `channel`.
pub(crate) async fn append(
    conn: &mut MultiplexedConnection,
    scripts: &mut Scripts,
    topic: &str,
    channel: String,
    data: &[u8],
    limits: &HistoryLimits,
) -> RedisResult<()> {
    let [n, e, s] = keys(topic);
    let args = [
        data.to_vec(),
        limits.size.to_string().into_bytes(),
        ttl_ms(limits).to_string().into_bytes(),
        crate::fresh_epoch().into_bytes(),
    ];
    eval(
        conn,
        &mut scripts.append,
        APPEND,
        &[n, e, s, channel],
        &args,
    )
    .await
    .map(|_| ())
}

/// Reads the topic's epoch, latest offset and the entries after `after`.
pub(crate) async fn read(
    conn: &mut MultiplexedConnection,
    scripts: &mut Scripts,
    topic: &str,
    after: Option<u64>,
    limits: &HistoryLimits,
) -> RedisResult<Option<HistoryRead>> {
    let [n, e, s] = keys(topic);
    let after = after.map_or_else(|| "-1".to_owned(), |a| a.to_string());
    let args = [
        after.into_bytes(),
        ttl_ms(limits).to_string().into_bytes(),
        crate::fresh_epoch().into_bytes(),
    ];
    let value = eval(conn, &mut scripts.read, READ, &[n, e, s], &args).await?;
    Ok(parse_read(value))
}

/// `{epoch, last, offset, data, ...}`; `None` when it is not that shape.
fn parse_read(value: Value) -> Option<HistoryRead> {
    let Value::Array(items) = value else {
        return None;
    };
    let mut items = items.into_iter();
    let epoch = match items.next()? {
        Value::BulkString(b) => String::from_utf8(b).ok()?,
        _ => return None,
    };
    let last = match items.next()? {
        Value::Int(i) => u64::try_from(i).ok()?,
        _ => return None,
    };
    let mut entries = Vec::new();
    while let Some(offset) = items.next() {
        let offset: u64 = match offset {
            Value::BulkString(b) => std::str::from_utf8(&b).ok()?.parse().ok()?,
            _ => return None,
        };
        let data = match items.next()? {
            Value::BulkString(b) => Bytes::from(b),
            _ => return None,
        };
        entries.push((offset, data));
    }
    Some(HistoryRead {
        epoch,
        last,
        entries,
    })
}

/// Whether a command waits for an answer (given even when Redis is
/// unreachable).
pub(crate) fn waits_for_answer(command: &BackplaneCommand) -> bool {
    matches!(
        command,
        BackplaneCommand::Append { .. }
            | BackplaneCommand::ReadHistory { .. }
            | BackplaneCommand::ReadPresence { .. }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_answer_of_any_other_shape_is_refused() {
        let ok = Value::Array(vec![
            Value::BulkString(b"e".to_vec()),
            Value::Int(2),
            Value::BulkString(b"2".to_vec()),
            Value::BulkString(b"\"x\"".to_vec()),
        ]);
        let read = parse_read(ok).unwrap();
        assert_eq!((read.epoch.as_str(), read.last), ("e", 2));
        assert_eq!(read.entries, vec![(2, Bytes::from_static(b"\"x\""))]);
        assert_eq!(parse_read(Value::Nil), None);
        assert_eq!(parse_read(Value::Array(vec![Value::Int(1)])), None);
        assert_eq!(
            parse_read(Value::Array(vec![
                Value::BulkString(b"e".to_vec()),
                Value::Int(-1)
            ])),
            None
        );
        assert_eq!(
            parse_read(Value::Array(vec![
                Value::BulkString(b"e".to_vec()),
                Value::Int(1),
                Value::BulkString(b"x".to_vec()),
            ])),
            None
        );
    }
}
