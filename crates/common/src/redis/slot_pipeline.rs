//! A pipeline over keys of many slots. A Redis Cluster refuses a pipeline whose keys
//! hash to different slots, and the items and users a batch touches do: this sends one
//! pipeline per slot (concurrently, each to the node that owns it) on a cluster, and one
//! pipeline in all on a single server, and answers in the order commands were added.
//! It is not atomic on either; code that needs atomicity keeps its keys in one slot and
//! uses a script or MULTI.

use super::{SharedConnection, slot_of};
use redis::{Cmd, FromRedisValue, Pipeline, RedisResult, Value};
use std::collections::BTreeMap;

#[derive(Default)]
pub struct SlotPipeline {
    commands: Vec<Command>,
}

struct Command {
    slot: u16,
    cmd: Cmd,
    keep_reply: bool,
}

impl SlotPipeline {
    pub fn new() -> Self {
        Self::default()
    }

    /// One command per key, `command(key)`, each on its key's slot.
    pub fn per_key(keys: impl IntoIterator<Item = String>, command: impl Fn(&str) -> Cmd) -> Self {
        let mut pipe = Self::new();
        for key in keys {
            pipe.add(&key, command(&key));
        }
        pipe
    }

    /// Adds a command on keys of `key`'s slot; its reply is returned.
    pub fn add(&mut self, key: &str, cmd: Cmd) -> &mut Self {
        self.push(key, cmd, true)
    }

    /// Adds a command on keys of `key`'s slot whose reply nobody needs.
    pub fn add_ignored(&mut self, key: &str, cmd: Cmd) -> &mut Self {
        self.push(key, cmd, false)
    }

    fn push(&mut self, key: &str, cmd: Cmd, keep_reply: bool) -> &mut Self {
        self.commands.push(Command {
            slot: slot_of(key),
            cmd,
            keep_reply,
        });
        self
    }

    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }

    /// Sends everything; the replies of the commands added with [`Self::add`], in order.
    pub async fn query<T: FromRedisValue>(self, conn: &SharedConnection) -> RedisResult<Vec<T>> {
        if self.commands.is_empty() {
            return Ok(Vec::new());
        }
        let replies = match conn {
            SharedConnection::Single(_) => {
                let mut pipe = redis::pipe();
                for command in self.commands {
                    add_to(&mut pipe, command);
                }
                pipe.query_async::<Vec<Value>>(&mut conn.clone()).await?
            }
            SharedConnection::Cluster(_) => self.query_by_slot(conn).await?,
        };
        Ok(T::from_redis_values(replies)?)
    }

    /// Sends everything, keeping no reply.
    pub async fn run(self, conn: &SharedConnection) -> RedisResult<()> {
        self.query::<Value>(conn).await.map(drop)
    }

    async fn query_by_slot(self, conn: &SharedConnection) -> RedisResult<Vec<Value>> {
        let mut by_slot: BTreeMap<u16, (Pipeline, Vec<usize>)> = BTreeMap::new();
        let mut kept = 0;
        for command in self.commands {
            let (pipe, positions) = by_slot.entry(command.slot).or_default();
            if command.keep_reply {
                positions.push(kept);
                kept += 1;
            }
            add_to(pipe, command);
        }
        let answered =
            futures_util::future::try_join_all(by_slot.into_values().map(|(pipe, positions)| {
                let mut conn = conn.clone();
                async move {
                    let replies: Vec<Value> = pipe.query_async(&mut conn).await?;
                    Ok::<_, redis::RedisError>(positions.into_iter().zip(replies))
                }
            }))
            .await?;
        let mut replies = vec![Value::Nil; kept];
        for (position, reply) in answered.into_iter().flatten() {
            replies[position] = reply;
        }
        Ok(replies)
    }
}

fn add_to(pipe: &mut Pipeline, command: Command) {
    pipe.add_command(command.cmd);
    if !command.keep_reply {
        pipe.ignore();
    }
}
