//! Several nodes on Redis (`--redis-url`): pub/sub between nodes, presence with expiry.
//!
//! # Channels
//!
//! A node subscribes to a channel only while it has a local user behind it:
//!
//! * `rtm:{app}:u:{user}` while `user` is logged in on this node: pushes outside rooms and the
//!   "login taken" notice of a newer login elsewhere;
//! * `rtm:{app}:r:{room}` while `room` has a member on this node: room pushes (to everyone,
//!   or to a list of users) and member joins and leaves.
//!
//! A message is published once, tagged with the publishing node; each receiving node delivers
//! it to its own sessions and ignores its own messages (their local recipients already got
//! them from the routing functions in [`crate::hub`]).
//!
//! # Presence
//!
//! Each node writes what it hosts into keys of its own, all expiring unless the node's
//! heartbeat (every third of the TTL) renews them, so a crashed node's users vanish on their
//! own:
//!
//! * `rtm:nodes` (set of node ids) and `rtm:node:{node}` (the node's liveness key, expiring
//!   after the TTL: a node is live while it exists);
//! * `rtm:{app}:logins:{node}`: user → session id (expiring after the TTL);
//! * `rtm:{app}:room:{room}:{node}`: member → `1` (visible) or `0` (invisible) followed by the
//!   `extra` of its join (see [`member_value`]), and
//!   `rtm:noderooms:{node}`, the index of the node's rooms (a sorted set of `{app}:{room}`,
//!   scores 0); these expire after three times the TTL, so that they outlive the liveness key.
//!
//! Lookups (`PeerStatus`, the `NO_RECEIVER` check of a user message, the members on other
//! nodes told to a joiner) walk the live nodes in one Lua script. They need a single Redis
//! server (or a primary), not Redis Cluster.
//!
//! # Dead nodes
//!
//! Every third of the TTL each node runs a Lua script, [`REAP_SCRIPT`], that finds the nodes
//! in `rtm:nodes` whose liveness key expired. For each room in such a node's index it reads
//! the room key, publishes on the room's channel a `Left` message with reason DROPPED, in the
//! dead node's name, for every member that is not in that room on a live node (a user who came
//! back elsewhere and joined again is not reported), and deletes the key and the index entry;
//! at most [`REAP_ROOMS`] rooms per call, called again until done. A node whose index is
//! empty leaves `rtm:nodes` and gets a tombstone, `rtm:reaped:{node}`. As the script is atomic
//! and deletes what it reported, each member is reported once in the cluster; each node with
//! members in the room delivers it to them ([`crate::hub::App::cluster_left`], which skips a
//! user who is a member on that node). A rejoin after the report publishes its `Joined`
//! after it, so the members see "left" then "joined". A crashed node's members are thus
//! reported between one and one and a third TTLs after its last heartbeat.
//!
//! Two cases the others cannot see:
//!
//! * A node restarted under the same id before its liveness key expired reports, on its
//!   first connection, the members its previous run left in Redis (the same script in `self`
//!   mode), except users that already joined the same room on it again.
//! * A node taken for dead that was only stalled or cut off from Redis finds its keys gone at
//!   its next heartbeat (or reconnection), rewrites them and, seeing its tombstone, publishes
//!   a `Joined` for each of its members not in that room on another node, so the others see
//!   them come back.
//!
//! # Losing Redis
//!
//! The node keeps serving its local users. It retries the connection with backoff, logs the
//! outage and the reconnection, then resubscribes every channel it needs and rewrites its
//! presence. Messages published while it was away are lost (pub/sub keeps nothing).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSubSink};
use rtm_protocol::frame::PushKind;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use crate::hub::{Hub, LeaveReason, SessionHandle, SessionId};
use crate::metrics::Metrics;

/// How long one Redis command (or connection attempt) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest pause between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Messages waiting to be published; beyond this they are dropped (and counted).
const PUBLISH_QUEUE: usize = 65_536;
/// At most this many messages go in one pipeline.
const PUBLISH_BATCH: usize = 512;
/// Channels per SUBSCRIBE command when resubscribing.
const SUBSCRIBE_CHUNK: usize = 1000;
/// Rooms of a dead node handled per call of [`REAP_SCRIPT`] (keeps each call short).
const REAP_ROOMS: usize = 64;
/// Calls of [`REAP_SCRIPT`] per round; whatever is left waits for the next round.
const REAP_CALLS: usize = 1000;
/// Room keys and the room index outlive the liveness key by this factor of the TTL, so the
/// node that finds a dead node can still read who was where.
const ROOMS_TTL_FACTOR: u32 = 3;
/// How long the tombstone of a forgotten node lasts (ms): a node back within this time
/// announces its room members again.
const REAPED_TTL_MS: u64 = 3_600_000;
/// Rooms per pipeline when a node back from the dead announces its members.
const ANNOUNCE_CHUNK: usize = 256;

/// The set of node ids.
const NODES_KEY: &str = "rtm:nodes";

/// Whether `app` has `user` logged in on a live node; returns that node or nil.
/// ARGV: app, user.
const ONLINE_SCRIPT: &str = r"
for _, n in ipairs(redis.call('SMEMBERS', 'rtm:nodes')) do
  if redis.call('HEXISTS', 'rtm:' .. ARGV[1] .. ':logins:' .. n, ARGV[2]) == 1 then return n end
end
return false
";

/// Publishes `ARGV[4]` on channel `ARGV[5]` when user `ARGV[3]` is in room `ARGV[2]` of app
/// `ARGV[1]` on some live node; returns 1 if so.
const ROOM_USER_SCRIPT: &str = r"
for _, n in ipairs(redis.call('SMEMBERS', 'rtm:nodes')) do
  if redis.call('HEXISTS', 'rtm:' .. ARGV[1] .. ':room:' .. ARGV[2] .. ':' .. n, ARGV[3]) == 1
    and redis.call('EXISTS', 'rtm:node:' .. n) == 1 then
    redis.call('PUBLISH', ARGV[5], ARGV[4])
    return 1
  end
end
return 0
";

/// The visible members of room `ARGV[2]` of app `ARGV[1]` on live nodes other than
/// `ARGV[3]`, as a flat list of user, extra, user, extra...
const MEMBERS_SCRIPT: &str = r"
local out = {}
for _, n in ipairs(redis.call('SMEMBERS', 'rtm:nodes')) do
  if n ~= ARGV[3] and redis.call('EXISTS', 'rtm:node:' .. n) == 1 then
    local h = redis.call('HGETALL', 'rtm:' .. ARGV[1] .. ':room:' .. ARGV[2] .. ':' .. n)
    for i = 1, #h, 2 do
      if string.sub(h[i + 1], 1, 1) == '1' then
        out[#out + 1] = h[i]
        out[#out + 1] = string.sub(h[i + 1], 2)
      end
    end
  end
end
return out
";

/// Reaps dead nodes. For each room in a dead node's index (at most `ARGV[1]` rooms per call),
/// publishes a `Left` message (reason DROPPED, from the dead node) on the room's channel for
/// every visible member the dead node had there that is not in that room on a live node
/// (invisible members leave unannounced), then deletes the room key. A dead node whose index
/// is empty is removed from `rtm:nodes`.
///
/// `ARGV[2]` is the calling node. With `ARGV[3]` = `other`, the dead nodes are the other nodes
/// whose liveness key is gone, and a forgotten node gets a tombstone `rtm:reaped:{node}`
/// expiring after `ARGV[4]` ms (should it come back, it announces its members again); with
/// `ARGV[3]` = `self`, the dead node is the caller's previous run (a restart under the same
/// node id), and `ARGV[5..]` list the `{app}:{room}\n{user}` memberships the caller holds
/// already (not reported).
///
/// Returns {nodes forgotten, members reported, 1 if work is left for another call}.
const REAP_SCRIPT: &str = r"
if redis.replicate_commands then redis.replicate_commands() end
local function s(x)
  if #x > 65535 then x = string.sub(x, 1, 65535) end
  return string.char(math.floor(#x / 256), #x % 256) .. x
end
local budget = tonumber(ARGV[1])
local me = ARGV[2]
local own = ARGV[3] == 'self'
local keep = {}
if own then
  for i = 5, #ARGV do keep[ARGV[i]] = true end
end
local live, dead = {}, {}
for _, n in ipairs(redis.call('SMEMBERS', 'rtm:nodes')) do
  if n ~= me then
    if redis.call('EXISTS', 'rtm:node:' .. n) == 1 then
      live[#live + 1] = n
    elseif not own then
      dead[#dead + 1] = n
    end
  end
end
if own then dead = {me} end
local gone, told, more = 0, 0, 0
for _, d in ipairs(dead) do
  local idx = 'rtm:noderooms:' .. d
  if budget > 0 then
    local rooms = redis.call('ZRANGE', idx, 0, budget - 1)
    budget = budget - #rooms
    for _, ar in ipairs(rooms) do
      redis.call('ZREM', idx, ar)
      local app, room = string.match(ar, '^(.*):([^:]*)$')
      if app then
        local key = 'rtm:' .. app .. ':room:' .. room .. ':' .. d
        local h = redis.call('HGETALL', key)
        redis.call('DEL', key)
        for i = 1, #h, 2 do
          local user = h[i]
          local back = keep[ar .. '\n' .. user] or false
          for _, n in ipairs(live) do
            if back then break end
            back = redis.call('HEXISTS', 'rtm:' .. app .. ':room:' .. room .. ':' .. n, user) == 1
          end
          if not back and string.sub(h[i + 1], 1, 1) == '1' then
            redis.call('PUBLISH', 'rtm:' .. app .. ':r:' .. room,
              string.char(4) .. s(d) .. s(user) .. s(string.sub(h[i + 1], 2)) .. string.char(1))
            told = told + 1
          end
        end
      end
    end
  end
  if redis.call('EXISTS', idx) == 1 then
    more = 1
  elseif not own then
    redis.call('SREM', 'rtm:nodes', d)
    redis.call('SET', 'rtm:reaped:' .. d, '1', 'PX', ARGV[4])
    gone = gone + 1
  end
end
return {gone, told, more}
";

/// For a node that was taken for dead but is back: publishes on the channel of room
/// `ARGV[2]` of app `ARGV[1]` each `Joined` message `ARGV[i + 1]` (i = 4, 6, ...) whose user
/// `ARGV[i]` is not in that room on a live node other than `ARGV[3]`. Returns how many it
/// published.
const ANNOUNCE_SCRIPT: &str = r"
local live = {}
for _, n in ipairs(redis.call('SMEMBERS', 'rtm:nodes')) do
  if n ~= ARGV[3] and redis.call('EXISTS', 'rtm:node:' .. n) == 1 then live[#live + 1] = n end
end
local told = 0
for i = 4, #ARGV, 2 do
  local elsewhere = false
  for _, n in ipairs(live) do
    if redis.call('HEXISTS', 'rtm:' .. ARGV[1] .. ':room:' .. ARGV[2] .. ':' .. n, ARGV[i]) == 1 then
      elsewhere = true
      break
    end
  end
  if not elsewhere then
    redis.call('PUBLISH', 'rtm:' .. ARGV[1] .. ':r:' .. ARGV[2], ARGV[i + 1])
    told = told + 1
  end
end
return told
";

/// The channel of a logged-in user.
fn user_channel(app: &str, user: &str) -> String {
    format!("rtm:{app}:u:{user}")
}

/// The channel of a room.
fn room_channel(app: &str, room: &str) -> String {
    format!("rtm:{app}:r:{room}")
}

fn logins_key(app: &str, node: &str) -> String {
    format!("rtm:{app}:logins:{node}")
}

fn room_key(app: &str, room: &str, node: &str) -> String {
    format!("rtm:{app}:room:{room}:{node}")
}

fn node_key(node: &str) -> String {
    format!("rtm:node:{node}")
}

/// The index of a node's room keys: a sorted set (all scores 0) of `{app}:{room}`.
fn rooms_index_key(node: &str) -> String {
    format!("rtm:noderooms:{node}")
}

/// Set when other nodes forgot `node` (it stopped renewing its liveness key).
fn reaped_key(node: &str) -> String {
    format!("rtm:reaped:{node}")
}

fn rooms_index_member(app: &str, room: &str) -> String {
    format!("{app}:{room}")
}

/// A channel name split into (app, kind `u` or `r`, id). Ids never contain `:`.
/// A member's value in a room key: `1` (visible) or `0` (invisible), then its `extra`.
fn member_value(extra: &str, visible: bool) -> String {
    let mut v = String::with_capacity(extra.len() + 1);
    v.push(if visible { '1' } else { '0' });
    v.push_str(extra);
    v
}

/// The visibility and `extra` in a [`member_value`].
fn parse_member_value(v: &str) -> (bool, &str) {
    match v.strip_prefix('0') {
        Some(extra) => (false, extra),
        None => (true, v.strip_prefix('1').unwrap_or(v)),
    }
}

fn parse_channel(ch: &str) -> Option<(&str, &str, &str)> {
    let mut it = ch.rsplitn(3, ':');
    let id = it.next()?;
    let kind = it.next()?;
    let app = it.next()?.strip_prefix("rtm:")?;
    Some((app, kind, id))
}

/// What nodes tell each other.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Wire<'a> {
    /// A push body for local sessions: on a user channel, to that user; on a room channel, to
    /// the listed members (`to` empty: every member but `except`).
    Push {
        node: &'a str,
        kind: PushKind,
        to: Vec<&'a str>,
        except: &'a str,
        body: &'a [u8],
    },
    /// The user logged in on `node`: an older login elsewhere loses its login.
    LoginTaken { node: &'a str, session: u64 },
    /// `user` joined the room on `node`, or became visible there: a membership of the same
    /// user elsewhere ends; other members are told when it is visible.
    Joined {
        node: &'a str,
        user: &'a str,
        extra: &'a str,
        visible: bool,
    },
    /// `user` left the room on `node`.
    Left {
        node: &'a str,
        user: &'a str,
        extra: &'a str,
        reason: u8,
    },
}

const W_PUSH: u8 = 1;
const W_TAKEN: u8 = 2;
const W_JOINED: u8 = 3;
/// Also written by [`REAP_SCRIPT`], which encodes `Left` messages (reason 1) itself.
const W_LEFT: u8 = 4;

fn put_str(out: &mut Vec<u8>, s: &str) {
    let n = u16::try_from(s.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&n.to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..usize::from(n)]);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        let b = self.0.get(..2)?;
        let n = u16::from_be_bytes([b[0], b[1]]);
        self.0 = &self.0[2..];
        Some(n)
    }
    fn u64(&mut self) -> Option<u64> {
        let b: [u8; 8] = self.0.get(..8)?.try_into().ok()?;
        self.0 = &self.0[8..];
        Some(u64::from_be_bytes(b))
    }
    fn str(&mut self) -> Option<&'a str> {
        let n = usize::from(self.u16()?);
        let s = std::str::from_utf8(self.0.get(..n)?).ok()?;
        self.0 = &self.0[n..];
        Some(s)
    }
}

fn kind_from(n: u8) -> Option<PushKind> {
    Some(match n {
        0 => PushKind::OutsideRoom,
        1 => PushKind::RoomUser,
        2 => PushKind::Room,
        _ => return None,
    })
}

impl<'a> Wire<'a> {
    fn encode(&self) -> Bytes {
        let mut out = Vec::new();
        match self {
            Wire::Push {
                node,
                kind,
                to,
                except,
                body,
            } => {
                out.reserve(body.len() + 32);
                out.push(W_PUSH);
                put_str(&mut out, node);
                out.push(*kind as u8);
                let n = u16::try_from(to.len()).unwrap_or(u16::MAX);
                out.extend_from_slice(&n.to_be_bytes());
                for u in to.iter().take(usize::from(n)) {
                    put_str(&mut out, u);
                }
                put_str(&mut out, except);
                out.extend_from_slice(body);
            }
            Wire::LoginTaken { node, session } => {
                out.push(W_TAKEN);
                put_str(&mut out, node);
                out.extend_from_slice(&session.to_be_bytes());
            }
            Wire::Joined {
                node,
                user,
                extra,
                visible,
            } => {
                out.push(W_JOINED);
                put_str(&mut out, node);
                put_str(&mut out, user);
                put_str(&mut out, extra);
                out.push(u8::from(*visible));
            }
            Wire::Left {
                node,
                user,
                extra,
                reason,
            } => {
                out.push(W_LEFT);
                put_str(&mut out, node);
                put_str(&mut out, user);
                put_str(&mut out, extra);
                out.push(*reason);
            }
        }
        Bytes::from(out)
    }

    fn decode(buf: &'a [u8]) -> Option<Wire<'a>> {
        let mut r = Reader(buf);
        let ty = r.u8()?;
        let node = r.str()?;
        Some(match ty {
            W_PUSH => {
                let kind = kind_from(r.u8()?)?;
                let n = r.u16()?;
                let mut to = Vec::with_capacity(usize::from(n));
                for _ in 0..n {
                    to.push(r.str()?);
                }
                let except = r.str()?;
                Wire::Push {
                    node,
                    kind,
                    to,
                    except,
                    body: r.0,
                }
            }
            W_TAKEN => Wire::LoginTaken {
                node,
                session: r.u64()?,
            },
            W_JOINED => Wire::Joined {
                node,
                user: r.str()?,
                extra: r.str()?,
                visible: r.u8()? != 0,
            },
            W_LEFT => Wire::Left {
                node,
                user: r.str()?,
                extra: r.str()?,
                reason: r.u8()?,
            },
            _ => return None,
        })
    }
}

/// A change of this node's local presence, applied to Redis in order by the manager task.
pub(crate) enum Event {
    /// `user` logged in on `session` (a local older login was replaced in place).
    Login {
        app: Arc<str>,
        user: String,
        session: SessionId,
    },
    /// `user` is no longer logged in on this node.
    Logout { app: Arc<str>, user: String },
    /// `user` joined `room` on `session`.
    Join {
        app: Arc<str>,
        room: String,
        user: String,
        extra: String,
        visible: bool,
        session: SessionHandle,
    },
    /// `user`, a member of `room` on this node, became visible or invisible.
    Visibility {
        app: Arc<str>,
        room: String,
        user: String,
        extra: String,
        visible: bool,
    },
    /// `user` is no longer in `room` on this node; `reason` is `None` when the membership
    /// moved to another node (nobody is told it left).
    Leave {
        app: Arc<str>,
        room: String,
        user: String,
        extra: String,
        reason: Option<LeaveReason>,
    },
    /// Removes this node's presence and stops.
    Shutdown(oneshot::Sender<()>),
}

enum Job {
    Publish {
        channel: String,
        payload: Bytes,
        reply: Option<oneshot::Sender<bool>>,
    },
    RoomUser {
        app: Arc<str>,
        room: String,
        user: String,
        payload: Bytes,
        reply: oneshot::Sender<bool>,
    },
}

/// This node's link to the cluster: cheap to share, never blocks the caller.
pub(crate) struct Cluster {
    node: Arc<str>,
    events: mpsc::UnboundedSender<Event>,
    jobs: mpsc::Sender<Job>,
    cmd: ConnectionManager,
    up: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("node", &self.node)
            .field("up", &self.is_up())
            .finish_non_exhaustive()
    }
}

/// Checks a Redis URL.
pub(crate) fn check_url(url: &str) -> Result<(), String> {
    redis::Client::open(url)
        .map(|_| ())
        .map_err(|e| format!("redis_url {url:?}: {e}"))
}

/// A random node id: 16 hex digits.
pub(crate) fn random_node_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Starts this node's cluster tasks for `hub` (within a Tokio runtime). Does not wait for
/// Redis: the node serves its local users and connects in the background.
pub(crate) fn start(
    url: &str,
    node: &str,
    ttl: Duration,
    hub: &Hub,
) -> Result<Arc<Cluster>, redis::RedisError> {
    let client = redis::Client::open(url)?;
    let cfg = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(MAX_BACKOFF);
    let cmd = ConnectionManager::new_lazy_with_config(client.clone(), cfg)?;
    let node: Arc<str> = Arc::from(node);
    let metrics = hub.metrics().clone();
    let up = Arc::new(AtomicBool::new(false));
    let (events, events_rx) = mpsc::unbounded_channel();
    let (jobs, jobs_rx) = mpsc::channel(PUBLISH_QUEUE);
    tokio::spawn(publisher(jobs_rx, cmd.clone(), up.clone(), metrics.clone()));
    let manager = Manager {
        node: node.clone(),
        client,
        cmd: cmd.clone(),
        hub: hub.clone(),
        metrics: metrics.clone(),
        ttl,
        up: up.clone(),
        logins: HashMap::new(),
        rooms: HashMap::new(),
        link: None,
        generation: 0,
        failures: 0,
        fresh: true,
    };
    let reaper = tokio::spawn(reaper(cmd.clone(), node.clone(), ttl, up.clone()));
    tokio::spawn(manager.run(events_rx, reaper));
    tracing::info!(node = %node, ttl_ms = ttl.as_millis() as u64, "cluster mode on Redis");
    Ok(Arc::new(Cluster {
        node,
        events,
        jobs,
        cmd,
        up,
        metrics,
    }))
}

impl Cluster {
    /// This node's id.
    pub(crate) fn node(&self) -> &str {
        &self.node
    }

    /// Whether the node is connected to Redis (subscriber and presence in place).
    pub(crate) fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Queues a presence change.
    pub(crate) fn event(&self, e: Event) {
        let _ = self.events.send(e);
    }

    fn job(&self, job: Job) {
        if self.jobs.try_send(job).is_err() {
            self.metrics.cluster_dropped();
        }
    }

    /// Publishes a push for `user` of `app` wherever it is logged in (not waiting).
    pub(crate) fn publish_user(&self, app: &str, user: &str, kind: PushKind, body: &[u8]) {
        let payload = self.push_wire(kind, &[], "", body);
        self.job(Job::Publish {
            channel: user_channel(app, user),
            payload,
            reply: None,
        });
    }

    /// Publishes a push for the members of `room` on other nodes: `to` (all but `except`
    /// when empty).
    pub(crate) fn publish_room(
        &self,
        app: &str,
        room: &str,
        kind: PushKind,
        to: &[&str],
        except: Option<&str>,
        body: &[u8],
    ) {
        let payload = self.push_wire(kind, to, except.unwrap_or_default(), body);
        self.job(Job::Publish {
            channel: room_channel(app, room),
            payload,
            reply: None,
        });
    }

    fn push_wire(&self, kind: PushKind, to: &[&str], except: &str, body: &[u8]) -> Bytes {
        Wire::Push {
            node: &self.node,
            kind,
            to: to.to_vec(),
            except,
            body,
        }
        .encode()
    }

    /// Publishes a push for `user` and tells whether some node has it logged in.
    pub(crate) async fn send_user(
        &self,
        app: &str,
        user: &str,
        kind: PushKind,
        body: &[u8],
    ) -> bool {
        let (tx, rx) = oneshot::channel();
        self.job(Job::Publish {
            channel: user_channel(app, user),
            payload: self.push_wire(kind, &[], "", body),
            reply: Some(tx),
        });
        rx.await.unwrap_or(false)
    }

    /// Publishes a push for `user` in `room` if it is a member on some node; tells whether it
    /// is.
    pub(crate) async fn send_room_user(
        &self,
        app: &Arc<str>,
        room: &str,
        user: &str,
        kind: PushKind,
        body: &[u8],
    ) -> bool {
        let (tx, rx) = oneshot::channel();
        self.job(Job::RoomUser {
            app: app.clone(),
            room: room.to_owned(),
            user: user.to_owned(),
            payload: self.push_wire(kind, &[user], "", body),
            reply: tx,
        });
        rx.await.unwrap_or(false)
    }

    /// Whether `user` of `app` is logged in on some live node (false when Redis is down).
    pub(crate) async fn is_online(&self, app: &str, user: &str) -> bool {
        if !self.is_up() {
            return false;
        }
        let mut cmd = self.cmd.clone();
        let mut c = redis::cmd("EVAL");
        c.arg(ONLINE_SCRIPT).arg(0).arg(app).arg(user);
        let q = c.query_async::<Option<String>>(&mut cmd);
        match tokio::time::timeout(COMMAND_TIMEOUT, q).await {
            Ok(Ok(node)) => node.is_some(),
            Ok(Err(e)) => {
                self.metrics.cluster_error();
                tracing::debug!(error = %e, "presence lookup failed");
                false
            }
            Err(_) => {
                self.metrics.cluster_error();
                false
            }
        }
    }

    /// Removes this node's presence from Redis and stops its tasks.
    pub(crate) async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.events.send(Event::Shutdown(tx)).is_ok() {
            let _ = tokio::time::timeout(COMMAND_TIMEOUT * 2, rx).await;
        }
    }
}

/// Publishes queued messages in order, many per round trip.
async fn publisher(
    mut rx: mpsc::Receiver<Job>,
    mut cmd: ConnectionManager,
    up: Arc<AtomicBool>,
    metrics: Arc<Metrics>,
) {
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    while rx.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        if !up.load(Ordering::Relaxed) {
            // Redis is away: fail fast rather than queue behind timeouts.
            for _ in &batch {
                metrics.cluster_dropped();
            }
            batch.clear();
            continue;
        }
        let mut pipe = redis::pipe();
        for j in &batch {
            match j {
                Job::Publish {
                    channel, payload, ..
                } => {
                    pipe.cmd("PUBLISH").arg(channel).arg(&payload[..]);
                }
                Job::RoomUser {
                    app,
                    room,
                    user,
                    payload,
                    ..
                } => {
                    pipe.cmd("EVAL")
                        .arg(ROOM_USER_SCRIPT)
                        .arg(0)
                        .arg(&**app)
                        .arg(room)
                        .arg(user)
                        .arg(&payload[..])
                        .arg(room_channel(app, room));
                }
            }
        }
        let result =
            tokio::time::timeout(COMMAND_TIMEOUT, pipe.query_async::<Vec<i64>>(&mut cmd)).await;
        let counts = match result {
            Ok(Ok(counts)) if counts.len() == batch.len() => {
                metrics.cluster_published(batch.len());
                counts
            }
            Ok(Ok(_)) => {
                metrics.cluster_error();
                Vec::new()
            }
            Ok(Err(e)) => {
                metrics.cluster_error();
                tracing::warn!(error = %e, messages = batch.len(), "publishing to Redis failed");
                Vec::new()
            }
            Err(_) => {
                metrics.cluster_error();
                tracing::warn!(messages = batch.len(), "publishing to Redis timed out");
                Vec::new()
            }
        };
        for (i, j) in batch.drain(..).enumerate() {
            let n = counts.get(i).copied().unwrap_or(0);
            match j {
                Job::Publish {
                    reply: Some(reply), ..
                }
                | Job::RoomUser { reply, .. } => {
                    let _ = reply.send(n > 0);
                }
                Job::Publish { reply: None, .. } => {}
            }
        }
    }
}

/// The subscriber connection of one (re)connection.
struct Link {
    sink: PubSubSink,
    reader: tokio::task::JoinHandle<()>,
}

/// Applies presence changes, keeps the subscriber connection and the heartbeat.
struct Manager {
    node: Arc<str>,
    client: redis::Client,
    cmd: ConnectionManager,
    hub: Hub,
    metrics: Arc<Metrics>,
    ttl: Duration,
    up: Arc<AtomicBool>,
    /// This node's logins: app → user → session.
    logins: HashMap<Arc<str>, HashMap<String, SessionId>>,
    /// This node's rooms: (app, room) → member → its [`member_value`].
    rooms: HashMap<(Arc<str>, String), HashMap<String, String>>,
    link: Option<Link>,
    generation: u64,
    /// Consecutive failed connection attempts.
    failures: u32,
    /// No connection has succeeded yet: a previous run under the same node id may have left
    /// presence behind.
    fresh: bool,
}

type Res<T> = Result<T, String>;

async fn timed<T>(
    what: &str,
    f: impl std::future::Future<Output = redis::RedisResult<T>>,
) -> Res<T> {
    match tokio::time::timeout(COMMAND_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(format!("{what}: {e}")),
        Err(_) => Err(format!("{what}: timed out")),
    }
}

impl Manager {
    async fn run(
        mut self,
        mut events: mpsc::UnboundedReceiver<Event>,
        reaper: tokio::task::JoinHandle<()>,
    ) {
        let (lost_tx, mut lost) = mpsc::unbounded_channel::<u64>();
        let mut heartbeat = tokio::time::interval((self.ttl / 3).max(Duration::from_millis(50)));
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut retry_at = Some(Instant::now());
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    None => break,
                    Some(Event::Shutdown(done)) => {
                        self.remove_all().await;
                        let _ = done.send(());
                        break;
                    }
                    Some(e) => {
                        if let Err(e) = self.apply(e).await {
                            self.lost(&e);
                            retry_at = Some(self.backoff());
                        }
                    }
                },
                Some(g) = lost.recv() => {
                    if g == self.generation && self.link.is_some() {
                        self.lost("subscriber connection closed");
                        retry_at = Some(self.backoff());
                    }
                }
                _ = heartbeat.tick(), if self.link.is_some() => {
                    if let Err(e) = self.heartbeat().await {
                        self.lost(&e);
                        retry_at = Some(self.backoff());
                    }
                }
                () = sleep_until(retry_at), if self.link.is_none() => {
                    match self.connect(&lost_tx).await {
                        Ok(()) => retry_at = None,
                        Err(e) => {
                            self.lost(&e);
                            retry_at = Some(self.backoff());
                        }
                    }
                }
            }
        }
        reaper.abort();
        if let Some(l) = self.link.take() {
            l.reader.abort();
        }
        self.up.store(false, Ordering::Relaxed);
        self.metrics.set_redis_up(false);
    }

    fn backoff(&mut self) -> Instant {
        self.failures = self.failures.saturating_add(1);
        let ms = 100u64.saturating_mul(1 << self.failures.min(5));
        Instant::now() + Duration::from_millis(ms).min(MAX_BACKOFF)
    }

    /// Marks the link down after `why`.
    fn lost(&mut self, why: &str) {
        self.metrics.cluster_error();
        let was_up = self.up.swap(false, Ordering::Relaxed);
        self.metrics.set_redis_up(false);
        if let Some(l) = self.link.take() {
            l.reader.abort();
        }
        if was_up {
            tracing::error!(node = %self.node, error = why, "lost Redis; serving local users only until it is back");
        } else if self.failures == 0 {
            tracing::warn!(node = %self.node, error = why, "cannot reach Redis; retrying");
        } else {
            tracing::debug!(node = %self.node, error = why, "Redis still unreachable");
        }
    }

    /// Connects the subscriber, resubscribes and rewrites this node's presence.
    async fn connect(&mut self, lost_tx: &mpsc::UnboundedSender<u64>) -> Res<()> {
        let pubsub = timed("connect", self.client.get_async_pubsub()).await?;
        let (mut sink, mut stream) = pubsub.split();
        self.generation += 1;
        let generation = self.generation;
        let hub = self.hub.clone();
        let node = self.node.clone();
        let metrics = self.metrics.clone();
        let lost_tx = lost_tx.clone();
        let reader = tokio::spawn(async move {
            while let Some(msg) = stream.next().await {
                metrics.cluster_received();
                dispatch(&hub, &node, msg.get_channel_name(), msg.get_payload_bytes());
            }
            let _ = lost_tx.send(generation);
        });
        let channels = self.channels();
        for chunk in channels.chunks(SUBSCRIBE_CHUNK) {
            if let Err(e) = timed("subscribe", sink.subscribe(chunk)).await {
                reader.abort();
                return Err(e);
            }
        }
        self.link = Some(Link { sink, reader });
        if self.fresh {
            self.reap_previous_run().await?;
            self.fresh = false;
        }
        self.rewrite_presence().await?;
        let again = self.failures > 0 || self.generation > 1;
        self.failures = 0;
        self.up.store(true, Ordering::Relaxed);
        self.metrics.set_redis_up(true);
        self.metrics.cluster_reconnect();
        if again {
            tracing::info!(node = %self.node, channels = channels.len(), "reconnected to Redis; resubscribed and presence restored");
        } else {
            tracing::info!(node = %self.node, "connected to Redis");
        }
        Ok(())
    }

    /// Every channel this node needs.
    fn channels(&self) -> Vec<String> {
        let users = self
            .logins
            .iter()
            .flat_map(|(app, users)| users.keys().map(move |u| user_channel(app, u)));
        let rooms = self.rooms.keys().map(|(app, room)| room_channel(app, room));
        users.chain(rooms).collect()
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis() as u64
    }

    /// The expiry of room keys and of the room index.
    fn rooms_ttl_ms(&self) -> u64 {
        (self.ttl * ROOMS_TTL_FACTOR).as_millis() as u64
    }

    /// Reports the members a previous run of this node id left in Redis (a crash and a
    /// restart within the TTL, which the other nodes cannot notice) as dropped, except those
    /// this run holds already.
    async fn reap_previous_run(&self) -> Res<()> {
        let keep: Vec<String> = self
            .rooms
            .iter()
            .flat_map(|((app, room), members)| {
                let m = rooms_index_member(app, room);
                members.keys().map(move |u| format!("{m}\n{u}"))
            })
            .collect();
        let (_, told) = reap(&mut self.cmd.clone(), &self.node, Some(&keep)).await?;
        if told > 0 {
            tracing::info!(node = %self.node, members = told, "reported the members of this node's previous run as dropped");
        }
        Ok(())
    }

    /// Rewrites every presence key of this node from the local state.
    async fn rewrite_presence(&mut self) -> Res<()> {
        let ttl = self.ttl_ms();
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(node_key(&self.node))
            .arg(now_ms())
            .arg("PX")
            .arg(ttl)
            .ignore();
        pipe.cmd("SADD").arg(NODES_KEY).arg(&*self.node).ignore();
        for (app, users) in &self.logins {
            let key = logins_key(app, &self.node);
            pipe.cmd("DEL").arg(&key).ignore();
            if !users.is_empty() {
                let mut c = redis::cmd("HSET");
                c.arg(&key);
                for (u, s) in users {
                    c.arg(u).arg(*s);
                }
                pipe.add_command(c).ignore();
                pipe.cmd("PEXPIRE").arg(&key).arg(ttl).ignore();
            }
        }
        let rooms_ttl = self.rooms_ttl_ms();
        let index = rooms_index_key(&self.node);
        pipe.cmd("DEL").arg(&index).ignore();
        for ((app, room), members) in &self.rooms {
            let key = room_key(app, room, &self.node);
            pipe.cmd("DEL").arg(&key).ignore();
            let mut c = redis::cmd("HSET");
            c.arg(&key);
            for (u, extra) in members {
                c.arg(u).arg(extra);
            }
            pipe.add_command(c).ignore();
            pipe.cmd("PEXPIRE").arg(&key).arg(rooms_ttl).ignore();
            pipe.cmd("ZADD")
                .arg(&index)
                .arg(0)
                .arg(rooms_index_member(app, room))
                .ignore();
        }
        if !self.rooms.is_empty() {
            pipe.cmd("PEXPIRE").arg(&index).arg(rooms_ttl).ignore();
        }
        pipe.cmd("DEL").arg(reaped_key(&self.node));
        let mut cmd = self.cmd.clone();
        let (reaped,): (i64,) = timed("presence", pipe.query_async(&mut cmd)).await?;
        if reaped > 0 {
            self.announce_members().await?;
        }
        Ok(())
    }

    /// After other nodes took this node for dead (and reported its room members as
    /// dropped): tells them its members are there, except those now in the same room on
    /// another node.
    async fn announce_members(&self) -> Res<()> {
        let rooms: Vec<_> = self.rooms.iter().collect();
        let mut told = 0;
        for chunk in rooms.chunks(ANNOUNCE_CHUNK) {
            let mut pipe = redis::pipe();
            for ((app, room), members) in chunk {
                let c = pipe
                    .cmd("EVAL")
                    .arg(ANNOUNCE_SCRIPT)
                    .arg(0)
                    .arg(&**app)
                    .arg(room)
                    .arg(&*self.node);
                for (user, value) in *members {
                    let (visible, extra) = parse_member_value(value);
                    if !visible {
                        continue;
                    }
                    let joined = Wire::Joined {
                        node: &self.node,
                        user,
                        extra,
                        visible,
                    }
                    .encode();
                    c.arg(user).arg(&joined[..]);
                }
            }
            let mut cmd = self.cmd.clone();
            let n: Vec<i64> = timed("announce", pipe.query_async(&mut cmd)).await?;
            told += n.iter().sum::<i64>();
        }
        if told > 0 {
            tracing::warn!(node = %self.node, members = told, "other nodes took this node for dead; announced its room members again");
        }
        Ok(())
    }

    /// Renews this node's keys; rewrites them when Redis lost some (a restart without
    /// persistence, or other nodes took this node for dead); checks the subscriber connection.
    async fn heartbeat(&mut self) -> Res<()> {
        let ttl = self.ttl_ms();
        let mut pipe = redis::pipe();
        pipe.cmd("SET")
            .arg(node_key(&self.node))
            .arg(now_ms())
            .arg("PX")
            .arg(ttl)
            .ignore();
        pipe.cmd("SADD").arg(NODES_KEY).arg(&*self.node).ignore();
        for (app, users) in &self.logins {
            if !users.is_empty() {
                pipe.cmd("PEXPIRE")
                    .arg(logins_key(app, &self.node))
                    .arg(ttl);
            }
        }
        let rooms_ttl = self.rooms_ttl_ms();
        for (app, room) in self.rooms.keys() {
            pipe.cmd("PEXPIRE")
                .arg(room_key(app, room, &self.node))
                .arg(rooms_ttl);
        }
        if !self.rooms.is_empty() {
            pipe.cmd("PEXPIRE")
                .arg(rooms_index_key(&self.node))
                .arg(rooms_ttl);
        }
        let mut cmd = self.cmd.clone();
        let renewed: Vec<i64> = timed("heartbeat", pipe.query_async(&mut cmd)).await?;
        if renewed.contains(&0) {
            tracing::warn!(node = %self.node, "presence keys missing in Redis; rewriting them");
            self.rewrite_presence().await?;
        }
        if let Some(l) = &mut self.link {
            timed("ping", l.sink.ping::<redis::Value>()).await?;
        }
        Ok(())
    }

    async fn subscribe(&mut self, channel: String) -> Res<()> {
        match &mut self.link {
            Some(l) => timed("subscribe", l.sink.subscribe(channel)).await,
            None => Ok(()),
        }
    }

    async fn unsubscribe(&mut self, channel: String) -> Res<()> {
        match &mut self.link {
            Some(l) => timed("unsubscribe", l.sink.unsubscribe(channel)).await,
            None => Ok(()),
        }
    }

    async fn run_pipe(&self, what: &str, pipe: redis::Pipeline) -> Res<()> {
        if self.link.is_none() {
            return Ok(());
        }
        let mut cmd = self.cmd.clone();
        timed(what, pipe.query_async::<()>(&mut cmd)).await
    }

    /// Updates the local state, then (while connected) Redis: subscriptions first, so a
    /// node that sees the presence can already reach the subscriber.
    async fn apply(&mut self, e: Event) -> Res<()> {
        let ttl = self.ttl_ms();
        match e {
            Event::Login { app, user, session } => {
                let first = self
                    .logins
                    .entry(app.clone())
                    .or_default()
                    .insert(user.clone(), session)
                    .is_none();
                if first {
                    self.subscribe(user_channel(&app, &user)).await?;
                }
                let key = logins_key(&app, &self.node);
                let mut pipe = redis::pipe();
                pipe.cmd("HSET").arg(&key).arg(&user).arg(session).ignore();
                pipe.cmd("PEXPIRE").arg(&key).arg(ttl).ignore();
                let taken = Wire::LoginTaken {
                    node: &self.node,
                    session,
                }
                .encode();
                pipe.cmd("PUBLISH")
                    .arg(user_channel(&app, &user))
                    .arg(&taken[..])
                    .ignore();
                self.run_pipe("login", pipe).await
            }
            Event::Logout { app, user } => {
                let removed = self
                    .logins
                    .get_mut(&app)
                    .and_then(|m| m.remove(&user))
                    .is_some();
                if !removed {
                    return Ok(());
                }
                self.unsubscribe(user_channel(&app, &user)).await?;
                let mut pipe = redis::pipe();
                pipe.cmd("HDEL")
                    .arg(logins_key(&app, &self.node))
                    .arg(&user)
                    .ignore();
                self.run_pipe("logout", pipe).await
            }
            Event::Join {
                app,
                room,
                user,
                extra,
                visible,
                session,
            } => {
                let members = self.rooms.entry((app.clone(), room.clone())).or_default();
                let first = members.is_empty();
                let value = member_value(&extra, visible);
                members.insert(user.clone(), value.clone());
                if first {
                    self.subscribe(room_channel(&app, &room)).await?;
                }
                if self.link.is_none() {
                    return Ok(());
                }
                let key = room_key(&app, &room, &self.node);
                let joined = Wire::Joined {
                    node: &self.node,
                    user: &user,
                    extra: &extra,
                    visible,
                }
                .encode();
                let rooms_ttl = self.rooms_ttl_ms();
                let index = rooms_index_key(&self.node);
                let mut pipe = redis::pipe();
                pipe.cmd("HSET").arg(&key).arg(&user).arg(&value).ignore();
                pipe.cmd("PEXPIRE").arg(&key).arg(rooms_ttl).ignore();
                pipe.cmd("ZADD")
                    .arg(&index)
                    .arg(0)
                    .arg(rooms_index_member(&app, &room))
                    .ignore();
                pipe.cmd("PEXPIRE").arg(&index).arg(rooms_ttl).ignore();
                pipe.cmd("PUBLISH")
                    .arg(room_channel(&app, &room))
                    .arg(&joined[..])
                    .ignore();
                pipe.cmd("EVAL")
                    .arg(MEMBERS_SCRIPT)
                    .arg(0)
                    .arg(&*app)
                    .arg(&room)
                    .arg(&*self.node);
                let mut cmd = self.cmd.clone();
                let (others,): (Vec<String>,) = timed("join", pipe.query_async(&mut cmd)).await?;
                // Tell the new member who is already there on other nodes.
                for pair in others.chunks_exact(2) {
                    if pair[0] != user {
                        session.deliver(crate::hub::Outbound::Frame(Box::new(
                            crate::hub::member_frame(&room, &pair[0], &pair[1], true, 0),
                        )));
                    }
                }
                Ok(())
            }
            Event::Visibility {
                app,
                room,
                user,
                extra,
                visible,
            } => {
                let k = (app.clone(), room.clone());
                let Some(value) = self.rooms.get_mut(&k).and_then(|m| m.get_mut(&user)) else {
                    return Ok(());
                };
                *value = member_value(&extra, visible);
                if self.link.is_none() {
                    return Ok(());
                }
                let mut pipe = redis::pipe();
                pipe.cmd("HSET")
                    .arg(room_key(&app, &room, &self.node))
                    .arg(&user)
                    .arg(&*value)
                    .ignore();
                let announce = match visible {
                    true => Wire::Joined {
                        node: &self.node,
                        user: &user,
                        extra: &extra,
                        visible,
                    },
                    false => Wire::Left {
                        node: &self.node,
                        user: &user,
                        extra: &extra,
                        reason: LeaveReason::SwitchToInvisible as u8,
                    },
                }
                .encode();
                pipe.cmd("PUBLISH")
                    .arg(room_channel(&app, &room))
                    .arg(&announce[..])
                    .ignore();
                self.run_pipe("visibility", pipe).await
            }
            Event::Leave {
                app,
                room,
                user,
                extra,
                reason,
            } => {
                let k = (app.clone(), room.clone());
                let Some(members) = self.rooms.get_mut(&k) else {
                    return Ok(());
                };
                if members.remove(&user).is_none() {
                    return Ok(());
                }
                let emptied = members.is_empty();
                if emptied {
                    self.rooms.remove(&k);
                    self.unsubscribe(room_channel(&app, &room)).await?;
                }
                let mut pipe = redis::pipe();
                pipe.cmd("HDEL")
                    .arg(room_key(&app, &room, &self.node))
                    .arg(&user)
                    .ignore();
                if emptied {
                    pipe.cmd("ZREM")
                        .arg(rooms_index_key(&self.node))
                        .arg(rooms_index_member(&app, &room))
                        .ignore();
                }
                if let Some(reason) = reason {
                    let left = Wire::Left {
                        node: &self.node,
                        user: &user,
                        extra: &extra,
                        reason: reason as u8,
                    }
                    .encode();
                    pipe.cmd("PUBLISH")
                        .arg(room_channel(&app, &room))
                        .arg(&left[..])
                        .ignore();
                }
                self.run_pipe("leave", pipe).await
            }
            Event::Shutdown(done) => {
                let _ = done.send(());
                Ok(())
            }
        }
    }

    /// On shutdown: deletes this node's keys.
    async fn remove_all(&mut self) {
        if self.link.is_none() {
            return;
        }
        let mut pipe = redis::pipe();
        for app in self.logins.keys() {
            pipe.cmd("DEL").arg(logins_key(app, &self.node)).ignore();
        }
        for (app, room) in self.rooms.keys() {
            pipe.cmd("DEL")
                .arg(room_key(app, room, &self.node))
                .ignore();
        }
        pipe.cmd("DEL").arg(rooms_index_key(&self.node)).ignore();
        pipe.cmd("DEL").arg(reaped_key(&self.node)).ignore();
        pipe.cmd("DEL").arg(node_key(&self.node)).ignore();
        pipe.cmd("SREM").arg(NODES_KEY).arg(&*self.node).ignore();
        if let Err(e) = self.run_pipe("shutdown", pipe).await {
            tracing::warn!(node = %self.node, error = %e, "could not remove this node's presence");
        }
    }
}

/// Runs [`REAP_SCRIPT`] until it has nothing left (at most [`REAP_CALLS`] times): for the
/// other nodes whose liveness expired, or with `keep` for the previous run of `node`.
/// Returns (nodes forgotten, members reported as dropped).
async fn reap(cmd: &mut ConnectionManager, node: &str, keep: Option<&[String]>) -> Res<(i64, i64)> {
    let (mut gone, mut told) = (0, 0);
    for _ in 0..REAP_CALLS {
        let mut c = redis::cmd("EVAL");
        c.arg(REAP_SCRIPT).arg(0).arg(REAP_ROOMS).arg(node);
        match keep {
            Some(keep) => c.arg("self").arg(REAPED_TTL_MS).arg(keep),
            None => c.arg("other").arg(REAPED_TTL_MS),
        };
        let (g, t, more): (i64, i64, i64) = timed("reap", c.query_async(cmd)).await?;
        gone += g;
        told += t;
        if more == 0 {
            break;
        }
    }
    Ok((gone, told))
}

/// Every third of the TTL (while connected): forgets the nodes whose liveness expired and
/// reports their room members as dropped to the other nodes.
async fn reaper(mut cmd: ConnectionManager, node: Arc<str>, ttl: Duration, up: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval((ttl / 3).max(Duration::from_millis(50)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !up.load(Ordering::Relaxed) {
            continue;
        }
        match reap(&mut cmd, &node, None).await {
            Ok((gone, told)) if gone > 0 || told > 0 => {
                tracing::info!(node = %node, nodes = gone, members = told, "forgot nodes whose heartbeat stopped; their room members reported as dropped");
            }
            Ok(_) => {}
            Err(e) => tracing::debug!(node = %node, error = %e, "reaping dead nodes failed"),
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Hands one message from Redis to this node's sessions.
fn dispatch(hub: &Hub, node: &str, channel: &str, payload: &[u8]) {
    let Some((app_id, kind, id)) = parse_channel(channel) else {
        return;
    };
    let Some(app) = hub.app(app_id) else {
        return;
    };
    let Some(wire) = Wire::decode(payload) else {
        tracing::debug!(channel, "undecodable cluster message");
        return;
    };
    match (kind, wire) {
        (_, Wire::Push { node: n, .. })
        | (_, Wire::LoginTaken { node: n, .. })
        | (_, Wire::Joined { node: n, .. })
        | (_, Wire::Left { node: n, .. })
            if n == node => {}
        ("u", Wire::Push { kind, body, .. }) => {
            app.cluster_push_login(id, kind, crate::hub::Payload::shared(body.to_vec()));
        }
        ("u", Wire::LoginTaken { node: n, session }) => {
            tracing::debug!(
                user = id,
                by_node = n,
                session,
                "login taken on another node"
            );
            app.cluster_login_taken(id);
        }
        (
            "r",
            Wire::Push {
                kind,
                to,
                except,
                body,
                ..
            },
        ) => {
            let except = (!except.is_empty()).then_some(except);
            app.cluster_push_room(
                id,
                kind,
                &to,
                except,
                crate::hub::Payload::shared(body.to_vec()),
            );
        }
        (
            "r",
            Wire::Joined {
                user,
                extra,
                visible,
                ..
            },
        ) => app.cluster_joined(id, user, extra, visible),
        (
            "r",
            Wire::Left {
                user,
                extra,
                reason,
                ..
            },
        ) => app.cluster_left(id, user, extra, reason),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip() {
        let msgs = [
            Wire::Push {
                node: "n1",
                kind: PushKind::Room,
                to: vec!["a", "b"],
                except: "c",
                body: b"\x02hello",
            },
            Wire::Push {
                node: "n1",
                kind: PushKind::OutsideRoom,
                to: vec![],
                except: "",
                body: b"",
            },
            Wire::LoginTaken {
                node: "n2",
                session: 42,
            },
            Wire::Joined {
                node: "n3",
                user: "u",
                extra: "{\"x\":1}",
                visible: true,
            },
            Wire::Joined {
                node: "n3",
                user: "v",
                extra: "",
                visible: false,
            },
            Wire::Left {
                node: "n3",
                user: "u",
                extra: "",
                reason: 1,
            },
        ];
        for m in msgs {
            let b = m.encode();
            assert_eq!(Wire::decode(&b), Some(m));
        }
        assert_eq!(Wire::decode(b"\x09\x00\x01n"), None);
        assert_eq!(Wire::decode(b""), None);
    }

    #[test]
    fn member_values() {
        for (extra, visible) in [("", true), ("", false), ("0x", true), ("{\"a\":1}", false)] {
            assert_eq!(
                parse_member_value(&member_value(extra, visible)),
                (visible, extra)
            );
        }
    }

    #[test]
    fn channels() {
        let app = "0123456789abcdef01234567";
        assert_eq!(
            parse_channel(&user_channel(app, "alice@x.y")),
            Some((app, "u", "alice@x.y"))
        );
        assert_eq!(
            parse_channel(&room_channel(app, "room-1")),
            Some((app, "r", "room-1"))
        );
        assert_eq!(parse_channel("other:thing"), None);
    }
}
