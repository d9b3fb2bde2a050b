//! Several `rtm-server` processes on one real `redis-server` (Debian's, on loopback): pushes
//! and peer messages across nodes, duplicate login and join across nodes, presence, a killed
//! node (its room members reported dropped), a node restarted under its id, a stalled node,
//! a Redis restart, and `/metrics`.
//!
//! Needs `redis-server` on PATH: without it these tests fail (they do not pass silently).

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use rtm_protocol::code::Code;
use rtm_protocol::frame::{ClientFrame, PushKind};
use serde_json::json;

/// The presence TTL the nodes run with: a killed node's users vanish within it.
const TTL_MS: u64 = 1500;

/// A `redis-server` on a free loopback port, without persistence; killed on drop.
struct Redis {
    port: u16,
    child: Child,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Redis {
    async fn start() -> Redis {
        Redis::start_on(free_port()).await
    }

    async fn start_on(port: u16) -> Redis {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot run redis-server ({e}): the cluster tests need it on PATH \
                     (Debian: apt-get install redis-server)"
                )
            });
        let r = Redis { port, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut c) = r.conn().await {
                if redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .is_ok()
                {
                    return r;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("redis-server did not answer on port {port}");
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    async fn conn(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await
    }

    async fn hexists(&self, key: &str, field: &str) -> bool {
        let mut c = self.conn().await.expect("redis connection");
        redis::cmd("HEXISTS")
            .arg(key)
            .arg(field)
            .query_async::<bool>(&mut c)
            .await
            .unwrap()
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An `rtm-server serve` process, one node of the cluster, logging JSON lines; killed on drop.
struct Node {
    id: String,
    addr: SocketAddr,
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl Node {
    async fn start(redis: &Redis, id: &str) -> Node {
        let mut child = Command::new(env!("CARGO_BIN_EXE_rtm-server"))
            .args(["serve", "--listen", "127.0.0.1:0", "--log-json"])
            .args(["--app-id", APP, "--app-key", APP_KEY])
            .args(["--access-key", AK, "--secret-key", SK])
            .args(["--redis-url", &redis.url(), "--node-id", id])
            .args(["--cluster-ttl-ms", &TTL_MS.to_string()])
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("rtm-server starts");
        let stdout = child.stdout.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                sink.lock().unwrap().push(line);
            }
        });
        // Every line is JSON (--log-json); the listening line carries the address.
        let addr = tokio::task::spawn_blocking(move || loop {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("a listening log line");
            let v: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"));
            if v["fields"]["message"] == "rtm-server listening" {
                return v["fields"]["addr"].as_str().unwrap().parse().unwrap();
            }
        })
        .await
        .unwrap();
        let node = Node {
            id: id.into(),
            addr,
            child,
            log,
        };
        node.wait_healthy().await;
        node
    }

    async fn healthz(&self) -> (u16, String) {
        let r = reqwest::get(format!("http://{}/healthz", self.addr))
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn wait_healthy(&self) {
        wait_for(&format!("node {} connected to Redis", self.id), || async {
            self.healthz().await.0 == 200
        })
        .await;
    }

    async fn client(&self) -> Client {
        connect(self.addr, APP).await
    }

    fn logged(&self, text: &str) -> bool {
        self.log.lock().unwrap().iter().any(|l| l.contains(text))
    }

    /// SIGSTOP or SIGCONT: a node that stalls (long enough to be taken for dead) and resumes.
    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill runs")
            .success();
        assert!(ok, "kill {sig}");
    }

    /// SIGKILL: no goodbye to Redis, as in a crash.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn wait_for<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting until {what}");
}

/// Waits until Redis shows `user` logged in on `node` (its channel is subscribed by then).
async fn wait_login(redis: &Redis, node: &Node, user: &str) {
    let key = format!("rtm:{APP}:logins:{}", node.id);
    wait_for(&format!("{user} is logged in on {}", node.id), || {
        redis.hexists(&key, user)
    })
    .await;
}

/// Waits until Redis shows `user` in `room` on `node` (the room channel is subscribed by then).
async fn wait_member(redis: &Redis, node: &Node, room: &str, user: &str) {
    let key = format!("rtm:{APP}:room:{room}:{}", node.id);
    wait_for(&format!("{user} is in {room} on {}", node.id), || {
        redis.hexists(&key, user)
    })
    .await;
}

/// The next push: (kind, room, from, payload).
async fn next_push(c: &mut Client) -> (PushKind, String, String, String) {
    loop {
        match c.next().await {
            Got::Push {
                kind,
                room,
                from,
                payload,
                ..
            } => return (kind, room, from, String::from_utf8(payload).unwrap()),
            Got::Closed(code) => panic!("closed ({code:?}) while waiting for a push"),
            _ => continue,
        }
    }
}

async fn peer_status(c: &mut Client, user: &str) -> u8 {
    let req = c.req();
    let (code, data) = c.call(&ClientFrame::PeerStatus { req, user }).await;
    assert_eq!(code, 0);
    data[0]
}

async fn send_user(c: &mut Client, room: &str, to: &str, text: &str) -> u16 {
    let req = c.req();
    c.call(&ClientFrame::SendUser {
        req,
        msg_id: u64::from(req),
        room,
        to,
        binary: false,
        payload: text.as_bytes(),
    })
    .await
    .0
}

fn unicast(to: &str, msg: &str) -> serde_json::Value {
    json!({"AppId": APP, "From": "biz", "To": to, "Binary": false, "Message": msg})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_reaches_users_on_every_node() {
    let redis = Redis::start().await;
    let a = Node::start(&redis, "a").await;
    let b = Node::start(&redis, "b").await;
    let c = Node::start(&redis, "c").await;

    let mut alice = a.client().await;
    assert_eq!(alice.login("alice").await, 0);
    let mut bob = b.client().await;
    assert_eq!(bob.login("bob").await, 0);
    let mut carol = c.client().await;
    assert_eq!(carol.join("r1", "carol").await, 0);
    let mut dave = a.client().await;
    assert_eq!(dave.join("r1", "dave").await, 0);
    let mut erin = b.client().await;
    assert_eq!(erin.join("r1", "erin").await, 0);
    wait_login(&redis, &a, "alice").await;
    wait_login(&redis, &b, "bob").await;
    wait_member(&redis, &c, "r1", "carol").await;
    wait_member(&redis, &a, "r1", "dave").await;
    wait_member(&redis, &b, "r1", "erin").await;

    // SendUnicast to users on other nodes (and on the same node).
    api(a.addr, "SendUnicast", &unicast("bob", "a->bob"))
        .await
        .assert_ok();
    api(c.addr, "SendUnicast", &unicast("alice", "c->alice"))
        .await
        .assert_ok();
    api(a.addr, "SendUnicast", &unicast("alice", "a->alice"))
        .await
        .assert_ok();
    assert_eq!(
        next_push(&mut bob).await,
        (
            PushKind::OutsideRoom,
            "".into(),
            "biz".into(),
            "a->bob".into()
        )
    );
    // Two requests to two nodes: no order between them.
    let mut got = [next_push(&mut alice).await.3, next_push(&mut alice).await.3];
    got.sort();
    assert_eq!(got, ["a->alice", "c->alice"]);

    // SendRoomUnicast to a member on another node.
    let body = json!({"AppId": APP, "RoomId": "r1", "From": "biz", "To": "carol",
        "Binary": false, "Message": "to carol"});
    api(a.addr, "SendRoomUnicast", &body).await.assert_ok();
    assert_eq!(
        next_push(&mut carol).await,
        (
            PushKind::RoomUser,
            "r1".into(),
            "biz".into(),
            "to carol".into()
        )
    );

    // BatchSendRoomUnicast through a third node: carol (c) and dave (a), not erin.
    let body = json!({"AppId": APP, "RoomId": "r1", "From": "biz", "To": ["carol", "dave", "nobody"],
        "Binary": false, "Message": "batch"});
    api(b.addr, "BatchSendRoomUnicast", &body).await.assert_ok();
    assert_eq!(next_push(&mut carol).await.3, "batch");
    assert_eq!(next_push(&mut dave).await.3, "batch");

    // SendBroadcast: every member once, wherever the request lands.
    let body =
        json!({"AppId": APP, "RoomId": "r1", "From": "biz", "Binary": false, "Message": "all"});
    api(c.addr, "SendBroadcast", &body).await.assert_ok();
    for cl in [&mut carol, &mut dave, &mut erin] {
        assert_eq!(
            next_push(cl).await,
            (PushKind::Room, "r1".into(), "biz".into(), "all".into())
        );
    }
    // No duplicates (a node delivers its own members once, never its own echo again), and
    // erin got nothing from the batch.
    for cl in [&mut alice, &mut bob, &mut carol, &mut dave, &mut erin] {
        cl.expect_silence(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_messages_members_and_presence_across_nodes() {
    let redis = Redis::start().await;
    let a = Node::start(&redis, "a").await;
    let b = Node::start(&redis, "b").await;

    let mut alice = a.client().await;
    assert_eq!(alice.login("alice").await, 0);
    let mut bob = b.client().await;
    assert_eq!(bob.login("bob").await, 0);
    wait_login(&redis, &b, "bob").await;

    // Online status and user messages outside rooms.
    assert_eq!(peer_status(&mut alice, "bob").await, 1);
    assert_eq!(peer_status(&mut bob, "alice").await, 1);
    assert_eq!(peer_status(&mut alice, "nobody").await, 0);
    assert_eq!(send_user(&mut alice, "", "bob", "hi bob").await, 0);
    assert_eq!(
        next_push(&mut bob).await,
        (
            PushKind::OutsideRoom,
            "".into(),
            "alice".into(),
            "hi bob".into()
        )
    );
    assert_eq!(
        send_user(&mut alice, "", "nobody", "x").await,
        Code::NoReceiver.as_u16()
    );

    // Rooms: the joiner hears of the member on the other node, and that member of it.
    assert_eq!(alice.join("room", "alice").await, 0);
    wait_member(&redis, &a, "room", "alice").await;
    assert_eq!(bob.join("room", "bob").await, 0);
    let mut saw_alice = false;
    while !saw_alice {
        if let Got::Member { user, joined, .. } = bob.next_any().await {
            saw_alice = user == "alice" && joined;
        }
    }
    loop {
        if let Got::Member {
            room, user, joined, ..
        } = alice.next_any().await
        {
            assert_eq!(
                (room.as_str(), user.as_str(), joined),
                ("room", "bob", true)
            );
            break;
        }
    }
    wait_member(&redis, &b, "room", "bob").await;

    // Messages in the room across nodes.
    assert_eq!(send_user(&mut alice, "room", "bob", "psst").await, 0);
    assert_eq!(
        next_push(&mut bob).await,
        (
            PushKind::RoomUser,
            "room".into(),
            "alice".into(),
            "psst".into()
        )
    );
    assert_eq!(
        send_user(&mut alice, "room", "carl", "x").await,
        Code::NoReceiver.as_u16()
    );
    let req = bob.req();
    let (code, _) = bob
        .call(&ClientFrame::SendRoom {
            req,
            msg_id: 1,
            room: "room",
            binary: false,
            payload: b"hello room",
        })
        .await;
    assert_eq!(code, 0);
    assert_eq!(
        next_push(&mut alice).await,
        (
            PushKind::Room,
            "room".into(),
            "bob".into(),
            "hello room".into()
        )
    );
    bob.expect_silence(Duration::from_millis(200)).await;

    // Leaving is announced on the other node.
    let req = bob.req();
    assert_eq!(
        bob.call(&ClientFrame::Leave { req, room: "room" }).await.0,
        0
    );
    loop {
        if let Got::Member { user, joined, .. } = alice.next_any().await {
            assert_eq!((user.as_str(), joined), ("bob", false));
            break;
        }
    }

    // A few heartbeats (checking the subscriber connection too) pass without a hitch.
    tokio::time::sleep(Duration::from_millis(TTL_MS)).await;
    assert_eq!(peer_status(&mut bob, "alice").await, 1);
    for n in [&a, &b] {
        for bad in ["lost Redis", "cannot reach Redis", "\"WARN\"", "\"ERROR\""] {
            assert!(!n.logged(bad), "{:?}", n.log.lock().unwrap());
        }
        assert!(n.logged("connected to Redis"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_login_and_join_across_nodes() {
    let redis = Redis::start().await;
    let a = Node::start(&redis, "a").await;
    let b = Node::start(&redis, "b").await;

    let mut first = a.client().await;
    assert_eq!(first.login("alice").await, 0);
    wait_login(&redis, &a, "alice").await;
    let mut second = b.client().await;
    assert_eq!(second.login("alice").await, 0);
    match first.next().await {
        Got::Notice { code, room, .. } => {
            assert_eq!(code, Code::RtmDuplicateLogin.as_u16());
            assert_eq!(room, "");
        }
        g => panic!("expected the duplicate-login notice, got {g:?}"),
    }
    first.expect_close(rtm_server::close::SESSION_ENDED).await;
    // The login moved: node a forgets it, node b has it, pushes go to b.
    wait_for("node a drops alice's login", || async {
        !redis.hexists(&format!("rtm:{APP}:logins:a"), "alice").await
    })
    .await;
    wait_login(&redis, &b, "alice").await;
    api(a.addr, "SendUnicast", &unicast("alice", "where?"))
        .await
        .assert_ok();
    assert_eq!(next_push(&mut second).await.3, "where?");

    // The same user joining a room on another node ends the older membership.
    let mut m1 = a.client().await;
    assert_eq!(m1.join("r", "zed").await, 0);
    wait_member(&redis, &a, "r", "zed").await;
    let mut m2 = b.client().await;
    assert_eq!(m2.join("r", "zed").await, 0);
    match m1.next().await {
        Got::Notice { code, room, .. } => {
            assert_eq!(code, Code::DuplicateLogin.as_u16());
            assert_eq!(room, "r");
        }
        g => panic!("expected the duplicate-join notice, got {g:?}"),
    }
    wait_member(&redis, &b, "r", "zed").await;
    let body = json!({"AppId": APP, "RoomId": "r", "From": "biz", "Binary": false, "Message": "m"});
    api(a.addr, "SendBroadcast", &body).await.assert_ok();
    assert_eq!(next_push(&mut m2).await.3, "m");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_users_reconnect_elsewhere_and_its_presence_expires() {
    let redis = Redis::start().await;
    let mut a = Node::start(&redis, "a").await;
    let b = Node::start(&redis, "b").await;
    let c = Node::start(&redis, "c").await;

    let mut alice = a.client().await;
    assert_eq!(alice.login("alice").await, 0);
    let mut watcher = b.client().await;
    assert_eq!(watcher.login("watcher").await, 0);
    wait_login(&redis, &a, "alice").await;
    assert_eq!(peer_status(&mut watcher, "alice").await, 1);

    a.kill();
    assert!(matches!(alice.next_any().await, Got::Closed(_)));
    // Nobody said goodbye: the presence of node a expires on its own.
    let started = Instant::now();
    while peer_status(&mut watcher, "alice").await != 0 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "alice still online"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        started.elapsed() < Duration::from_millis(TTL_MS * 3),
        "presence took {:?} to expire",
        started.elapsed()
    );
    assert_eq!(
        send_user(&mut watcher, "", "alice", "x").await,
        Code::NoReceiver.as_u16()
    );

    // Alice reconnects to node b; pushes sent through node c reach her again.
    let mut alice = b.client().await;
    assert_eq!(alice.login("alice").await, 0);
    wait_login(&redis, &b, "alice").await;
    api(c.addr, "SendUnicast", &unicast("alice", "welcome back"))
        .await
        .assert_ok();
    assert_eq!(next_push(&mut alice).await.3, "welcome back");
    assert_eq!(peer_status(&mut watcher, "alice").await, 1);
}

/// The Member frames about `user` that `c` receives until nothing arrives for `quiet`, as
/// (joined, reason).
async fn member_frames(c: &mut Client, user: &str, quiet: Duration) -> Vec<(bool, u8)> {
    let mut out = Vec::new();
    while let Ok(g) = tokio::time::timeout(quiet, c.next_any()).await {
        match g {
            Got::Member {
                user: u,
                joined,
                reason,
                ..
            } if u == user => out.push((joined, reason)),
            Got::Closed(code) => panic!("closed ({code:?}) while waiting for members"),
            _ => {}
        }
    }
    out
}

/// Waits (generously) for the next Member frame about `user` on `c`.
async fn next_member(c: &mut Client, user: &str) -> (bool, u8) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        // Polling in short slices: the helper's own wait panics after a few seconds.
        match tokio::time::timeout(left.min(Duration::from_secs(1)), c.next_any()).await {
            Ok(Got::Member {
                user: u,
                joined,
                reason,
                ..
            }) if u == user => return (joined, reason),
            Ok(Got::Closed(code)) => panic!("closed ({code:?}) while waiting for {user}"),
            Ok(_) => {}
            Err(_) => assert!(
                Instant::now() < deadline,
                "no Member frame about {user} in time"
            ),
        }
    }
}

/// Whether Redis still lists `node` among the nodes (a dead node leaves once reaped).
async fn node_listed(redis: &Redis, node: &str) -> bool {
    let mut c = redis.conn().await.expect("redis connection");
    redis::cmd("SISMEMBER")
        .arg("rtm:nodes")
        .arg(node)
        .query_async::<bool>(&mut c)
        .await
        .unwrap()
}

/// A client of `node` that joined "room" as `user`, once Redis lists it there.
async fn in_room(redis: &Redis, node: &Node, user: &str) -> Client {
    let mut c = node.client().await;
    assert_eq!(c.join("room", user).await, 0);
    wait_member(redis, node, "room", user).await;
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_node_room_members_leave_as_dropped() {
    let redis = Redis::start().await;
    let a = Node::start(&redis, "a").await;
    let mut b = Node::start(&redis, "b").await;

    let mut alice = in_room(&redis, &a, "alice").await;
    let mut bob = in_room(&redis, &b, "bob").await;
    assert_eq!(next_member(&mut alice, "bob").await, (true, 0));

    b.kill();
    while !matches!(bob.next_any().await, Got::Closed(_)) {}
    // Once node b's liveness expires, node a tells alice that bob dropped (reason 1).
    assert_eq!(next_member(&mut alice, "bob").await, (false, 1));
    // Once only, although node a keeps reaping.
    wait_for("node b is forgotten", || async {
        !node_listed(&redis, "b").await
    })
    .await;
    alice
        .expect_silence(Duration::from_millis(TTL_MS * 2))
        .await;
    // Its room key is gone with it.
    assert!(!redis_exists(&redis, &format!("rtm:{APP}:room:room:b")).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_restarted_under_its_id_reports_its_old_members_dropped() {
    let redis = Redis::start().await;
    let a = Node::start(&redis, "a").await;
    let mut b = Node::start(&redis, "b").await;

    let mut alice = in_room(&redis, &a, "alice").await;
    let mut bob = in_room(&redis, &b, "bob").await;
    assert_eq!(next_member(&mut alice, "bob").await, (true, 0));

    // Node b crashes and comes back at once under the same id, likely before its liveness
    // expires (then nobody else can tell it died): one of the two reports bob dropped.
    b.kill();
    while !matches!(bob.next_any().await, Got::Closed(_)) {}
    let _b = Node::start(&redis, "b").await;
    assert_eq!(next_member(&mut alice, "bob").await, (false, 1));
    alice
        .expect_silence(Duration::from_millis(TTL_MS * 2))
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_node_taken_for_dead_announces_its_members_again() {
    let redis = Redis::start().await;
    let a = Node::start(&redis, "a").await;
    let b = Node::start(&redis, "b").await;

    let mut alice = in_room(&redis, &a, "alice").await;
    let mut bob = in_room(&redis, &b, "bob").await;
    assert_eq!(next_member(&mut alice, "bob").await, (true, 0));

    b.signal("-STOP");
    assert_eq!(next_member(&mut alice, "bob").await, (false, 1));
    b.signal("-CONT");
    // Back: node b finds its presence gone, rewrites it and says bob is there.
    assert_eq!(next_member(&mut alice, "bob").await, (true, 0));
    wait_member(&redis, &b, "room", "bob").await;
    assert!(node_listed(&redis, "b").await);
    assert_eq!(
        send_user(&mut bob, "room", "alice", "still here").await,
        0,
        "bob's session on node b lives on"
    );
    assert_eq!(next_push(&mut alice).await.3, "still here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_back_on_a_live_node_is_not_reported_dropped() {
    let redis = Redis::start().await;
    let a = Node::start(&redis, "a").await;
    let mut b = Node::start(&redis, "b").await;
    let c = Node::start(&redis, "c").await;

    let mut alice = in_room(&redis, &a, "alice").await;
    let mut carol = in_room(&redis, &c, "carol").await;
    let mut bob = in_room(&redis, &b, "bob").await;
    assert_eq!(next_member(&mut alice, "bob").await, (true, 0));
    assert_eq!(next_member(&mut carol, "bob").await, (true, 0));

    // Node b dies; bob reconnects to node a and joins again, before or after node b is found
    // dead.
    b.kill();
    while !matches!(bob.next_any().await, Got::Closed(_)) {}
    let _bob = in_room(&redis, &a, "bob").await;
    wait_for("node b is forgotten", || async {
        !node_listed(&redis, "b").await
    })
    .await;

    // Whatever the order, bob ends up in the room for both: a "left" only before the new
    // "joined", never after it.
    let quiet = Duration::from_millis(TTL_MS);
    for (who, frames) in [
        ("alice", member_frames(&mut alice, "bob", quiet).await),
        ("carol", member_frames(&mut carol, "bob", quiet).await),
    ] {
        assert!(
            frames == [(true, 0)] || frames == [(false, 1), (true, 0)],
            "{who} saw {frames:?} about bob"
        );
    }
}

async fn redis_exists(redis: &Redis, key: &str) -> bool {
    let mut c = redis.conn().await.expect("redis connection");
    redis::cmd("EXISTS")
        .arg(key)
        .query_async::<bool>(&mut c)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_survives_a_redis_restart() {
    let mut redis = Redis::start().await;
    let a = Node::start(&redis, "a").await;
    let b = Node::start(&redis, "b").await;
    let mut alice = a.client().await;
    assert_eq!(alice.login("alice").await, 0);
    let mut bob = b.client().await;
    assert_eq!(bob.login("bob").await, 0);
    wait_login(&redis, &b, "bob").await;

    let port = redis.port;
    redis.stop();
    wait_for("node a reports Redis down", || async {
        a.healthz().await.0 == 503
    })
    .await;
    let (_, body) = a.healthz().await;
    assert!(body.contains("redis: down"), "{body}");
    // Local users are still served.
    assert_eq!(alice.ping().await, 0);
    assert_eq!(
        send_user(&mut alice, "", "bob", "x").await,
        Code::NoReceiver.as_u16()
    );

    // Redis comes back empty: the nodes reconnect, resubscribe and restore their presence.
    let redis = Redis::start_on(port).await;
    a.wait_healthy().await;
    b.wait_healthy().await;
    wait_login(&redis, &b, "bob").await;
    wait_login(&redis, &a, "alice").await;
    assert!(a.logged("reconnected to Redis"));
    assert!(a.logged("lost Redis"));
    assert_eq!(send_user(&mut alice, "", "bob", "back").await, 0);
    assert_eq!(next_push(&mut bob).await.3, "back");
    api(b.addr, "SendUnicast", &unicast("alice", "hi again"))
        .await
        .assert_ok();
    assert_eq!(next_push(&mut alice).await.3, "hi again");
}

/// The value of the first sample line starting with `series`.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_move() {
    let redis = Redis::start().await;
    let a = Node::start(&redis, "a").await;
    let b = Node::start(&redis, "b").await;
    let get = |addr: SocketAddr| async move {
        let r = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert!(r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text"));
        r.text().await.unwrap()
    };
    let before = get(a.addr).await;
    assert_eq!(sample(&before, "rtm_connections "), 0.0);
    assert_eq!(sample(&before, "rtm_cluster_redis_up "), 1.0);

    let mut alice = a.client().await;
    assert_eq!(alice.login("alice").await, 0);
    let mut bob = b.client().await;
    assert_eq!(bob.login("bob").await, 0);
    wait_login(&redis, &b, "bob").await;
    assert_eq!(send_user(&mut alice, "", "bob", "m1").await, 0);
    next_push(&mut bob).await;
    api(a.addr, "SendUnicast", &unicast("alice", "m2"))
        .await
        .assert_ok();
    next_push(&mut alice).await;
    let bad = json!({"AppId": APP, "From": "biz", "Binary": false, "Message": "m"});
    assert_eq!(api(a.addr, "SendUnicast", &bad).await.status, 400);

    let after = get(a.addr).await;
    assert_eq!(sample(&after, "rtm_connections "), 1.0);
    assert_eq!(sample(&after, "rtm_connections_opened_total "), 1.0);
    assert_eq!(
        sample(&after, &format!("rtm_logged_in_users{{app=\"{APP}\"}} ")),
        1.0
    );
    assert_eq!(
        sample(&after, "rtm_messages_in_total{kind=\"outside_room\"} "),
        2.0
    );
    assert_eq!(
        sample(&after, "rtm_messages_out_total{kind=\"outside_room\"} "),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            "rtm_openapi_requests_total{action=\"SendUnicast\",result=\"success\"} "
        ),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            "rtm_openapi_requests_total{action=\"SendUnicast\",result=\"MissingParameter\"} "
        ),
        1.0
    );
    assert!(sample(&after, "rtm_cluster_published_total ") >= 1.0);
    // Node b delivered alice's message to bob.
    let on_b = get(b.addr).await;
    assert_eq!(
        sample(&on_b, "rtm_messages_out_total{kind=\"outside_room\"} "),
        1.0
    );
    assert!(sample(&on_b, "rtm_cluster_received_total ") >= 1.0);
    assert!(after.contains("rtm_callback_duration_seconds"));
    assert!(after.trim_end().ends_with("# EOF"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invisible_members_across_nodes() {
    let redis = Redis::start().await;
    let a = Node::start(&redis, "a").await;
    let mut b = Node::start(&redis, "b").await;

    let mut alice = in_room(&redis, &a, "alice").await;
    // bob joins invisible on node b: told about alice, never announced to her.
    let mut bob = b.client().await;
    assert_eq!(bob.join_as("room", "bob", false).await, 0);
    wait_member(&redis, &b, "room", "bob").await;
    assert_eq!(next_member(&mut bob, "alice").await, (true, 0));
    // carol (visible, node b) is announced to alice; carol hears of alice only.
    let mut carol = in_room(&redis, &b, "carol").await;
    assert_eq!(next_member(&mut alice, "carol").await, (true, 0));
    assert_eq!(next_member(&mut carol, "alice").await, (true, 0));
    assert!(member_frames(&mut carol, "bob", Duration::from_millis(300))
        .await
        .is_empty());
    // bob is a receiver across nodes.
    assert_eq!(send_user(&mut alice, "room", "bob", "hi bob").await, 0);
    assert_eq!(next_push(&mut bob).await.3, "hi bob");
    // Visibility changes reach the other node.
    assert_eq!(bob.set_visibility("room", true).await, 0);
    assert_eq!(next_member(&mut alice, "bob").await, (true, 0));
    assert_eq!(bob.set_visibility("room", false).await, 0);
    assert_eq!(next_member(&mut alice, "bob").await, (false, 2));
    // Node b dies: its visible member is reported dropped, its invisible one is not.
    b.kill();
    assert_eq!(next_member(&mut alice, "carol").await, (false, 1));
    assert!(
        member_frames(&mut alice, "bob", Duration::from_millis(TTL_MS * 2))
            .await
            .is_empty(),
        "an invisible member's drop is not announced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_join_that_changes_visibility_is_announced_on_every_node() {
    let redis = Redis::start().await;
    let a = Node::start(&redis, "a").await;
    let b = Node::start(&redis, "b").await;
    let c = Node::start(&redis, "c").await;
    // alice watches from a third node.
    let mut alice = in_room(&redis, &c, "alice").await;
    let mut zed1 = in_room(&redis, &a, "zed").await;
    assert_eq!(next_member(&mut alice, "zed").await, (true, 0));
    // zed joins again on node b, invisibly: its node-a membership ends, and to alice it
    // left by switching to invisible.
    let mut zed2 = b.client().await;
    assert_eq!(zed2.join_as("room", "zed", false).await, 0);
    match zed1.next().await {
        Got::Notice { code, room, .. } => {
            assert_eq!(
                (code, room.as_str()),
                (Code::DuplicateLogin.as_u16(), "room")
            );
        }
        g => panic!("expected the duplicate-join notice, got {g:?}"),
    }
    assert_eq!(next_member(&mut alice, "zed").await, (false, 2));
    // And back on node a, visibly: alice sees it join.
    let mut zed3 = a.client().await;
    assert_eq!(zed3.join_as("room", "zed", true).await, 0);
    assert_eq!(next_member(&mut alice, "zed").await, (true, 0));
    assert!(member_frames(&mut alice, "zed", Duration::from_millis(300))
        .await
        .is_empty());
    drop((zed2, zed3));
}
