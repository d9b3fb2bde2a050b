//! A slow consumer: one member of a room stops reading its socket while 100 others keep
//! reading. The room gets broadcasts; the slow one also gets large user messages of its own,
//! so its path fills without making the others read megabytes. The others must receive every broadcast, in order; the slow one must be cut off
//! with close code 4002 (PROTOCOL.md §1: "the session's outbound queue overflows") and its
//! session ended. No assertion is about speed: every wait is only a bound against a hang.

mod common;

use std::time::Duration;

use common::*;
use futures::{SinkExt, StreamExt};
use rtm_protocol::code::Code;
use rtm_protocol::frame::{decode_server, encode_client, ClientFrame, ServerFrame};
use rtm_server::close;
use serde_json::json;
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

const READERS: usize = 100;
const BROADCASTS: u64 = 300;
const PAYLOAD: usize = 1024;
/// Large unicasts to the slow reader alone: they fill its path quickly.
const UNICASTS: u64 = 300;
const UNICAST_BYTES: usize = 65_536;
const ROOM: &str = "big";
/// A bound against hangs, not a speed requirement.
const LIMIT: Duration = Duration::from_secs(90);

fn message(seq: u64) -> String {
    let head = format!("{seq}#");
    format!("{head}{}", "x".repeat(PAYLOAD - head.len()))
}

type Ws = tokio_tungstenite::WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket whose socket has a tiny receive buffer, so that not reading fills the path
/// quickly.
async fn connect_small_buffer(addr: std::net::SocketAddr) -> Ws {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let mut req = format!("ws://{addr}/rtm?appId={APP}")
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("rtm.v1"));
    let (ws, _) = tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(tcp))
        .await
        .expect("ws handshake");
    ws
}

/// Sends `f` and returns the code of its reply.
async fn call(ws: &mut Ws, f: &ClientFrame<'_>) -> u16 {
    ws.send(Message::Binary(encode_client(f).into()))
        .await
        .unwrap();
    loop {
        let m = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("a reply in time");
        if let Some(Ok(Message::Binary(b))) = m {
            if let Ok(ServerFrame::Reply { code, .. }) = decode_server(&b) {
                return code;
            }
        } else {
            panic!("no reply: {m:?}");
        }
    }
}

/// Reads pushes until all `BROADCASTS` arrived, checking their order.
async fn read_all(mut c: Client, user: String) -> Result<(), String> {
    let mut next = 1u64;
    let mut last_seq = 0u64;
    while next <= BROADCASTS {
        let m = match c.ws.next().await {
            Some(Ok(Message::Binary(b))) => b,
            Some(Ok(Message::Close(f))) => return Err(format!("{user}: closed {f:?} at #{next}")),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(format!("{user}: {e} at #{next}")),
            None => return Err(format!("{user}: connection ended at #{next}")),
        };
        if let Ok(ServerFrame::Push { seq, push }) = decode_server(&m) {
            if seq != last_seq + 1 {
                return Err(format!("{user}: push seq {seq} after {last_seq}"));
            }
            last_seq = seq;
            let text = String::from_utf8_lossy(push.payload);
            let got: u64 = text.split('#').next().unwrap().parse().unwrap();
            if got != next {
                return Err(format!("{user}: message #{got}, expected #{next}"));
            }
            next += 1;
        }
    }
    c.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_is_cut_off_and_the_others_get_everything() {
    let mut config = common::config();
    config.session_queue = 128;
    config.openapi_rate = 100_000;
    config.max_messages_per_sec = 0;
    let server = server_with(config).await;
    let addr = server.local_addr();

    // The slow one joins (and logs in), reads its replies, then never reads again.
    let mut slow = connect_small_buffer(addr).await;
    let (t, user) = (token("", "slow"), "slow");
    let login = ClientFrame::Login {
        req: 1,
        token: &t,
        user,
    };
    assert_eq!(call(&mut slow, &login).await, 0);
    let t = token(ROOM, "slow");
    let join = ClientFrame::Join {
        req: 2,
        token: &t,
        room: ROOM,
        user,
        extra: "",
        visible: true,
    };
    assert_eq!(call(&mut slow, &join).await, 0);

    let mut readers = Vec::new();
    for i in 0..READERS {
        let user = format!("r{i}");
        let mut c = connect(addr, APP).await;
        assert_eq!(c.join(ROOM, &user).await, 0);
        readers.push(tokio::spawn(tokio::time::timeout(LIMIT, read_all(c, user))));
    }

    // The room's broadcasts go out in the background, one after the other.
    let broadcasts = tokio::spawn(async move {
        for seq in 1..=BROADCASTS {
            let body = json!({"AppId": APP, "RoomId": ROOM, "From": "svc", "Binary": false, "Message": message(seq)});
            api(addr, "SendBroadcast", &body).await.assert_ok();
        }
    });
    // Meanwhile another user floods the slow one alone with large messages, without waiting
    // for replies, so that its path fills quickly.
    let flood_started = tokio::time::Instant::now();
    let mut flooder = connect(addr, APP).await;
    assert_eq!(flooder.login("flooder").await, 0);
    let big = vec![b'y'; UNICAST_BYTES];
    for req in 1..=UNICASTS as u32 {
        let f = ClientFrame::SendUser {
            req: 1000 + req,
            msg_id: u64::from(req),
            room: "",
            to: "slow",
            binary: true,
            payload: &big,
        };
        flooder.send(&f).await;
    }
    for _ in 0..UNICASTS {
        match flooder.next().await {
            Got::Reply { code, .. } => assert!(
                code == 0 || code == Code::NoReceiver.as_u16(),
                "flood reply {code}"
            ),
            g => panic!("flooder: {g:?}"),
        }
    }
    eprintln!("flood took {:?}", flood_started.elapsed());
    // The slow one reads again: what was written before the cut, in order, then 4002. (It
    // reads again right after the flood: a server gives up writing the close frame to a
    // client that does not read after a while, and then only the TCP connection ends.)
    let mut pushes = 0u64;
    let close = tokio::time::timeout(LIMIT, async {
        loop {
            match slow.next().await {
                Some(Ok(Message::Binary(b))) => {
                    if let Ok(ServerFrame::Push { seq, .. }) = decode_server(&b) {
                        pushes += 1;
                        assert_eq!(seq, pushes, "the slow reader's pushes have no gap");
                    }
                }
                Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    eprintln!("slow reader: {e}");
                    return None;
                }
                None => return None,
            }
        }
    })
    .await
    .expect("the slow reader's connection ends");
    eprintln!("slow reader: {pushes} pushes, then {close:?}");
    broadcasts.await.expect("broadcasts");
    for r in readers {
        r.await
            .expect("reader task")
            .expect("a reader hung")
            .unwrap_or_else(|e| panic!("a reader missed a broadcast: {e}"));
    }
    assert!(
        pushes < BROADCASTS + UNICASTS,
        "the slow reader got all {pushes} pushes: it was not slow enough to overflow"
    );
    assert_eq!(
        close,
        Some(close::SESSION_ENDED),
        "the slow reader is closed with 4002 (after {pushes} pushes)"
    );
    // Its session is over: no login left.
    let end = tokio::time::Instant::now() + LIMIT;
    while server.hub().is_online(APP, "slow") && tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !server.hub().is_online(APP, "slow"),
        "the slow session ended"
    );
    server.shutdown().await.unwrap();
}

/// Joining a room with more members than the session queue holds is not "too slow": the
/// joiner has not had a chance to read anything yet.
#[tokio::test]
async fn joining_a_room_larger_than_the_queue_is_not_slow() {
    let mut config = common::config();
    config.session_queue = 8;
    let server = server_with(config).await;
    let addr = server.local_addr();
    let mut members = Vec::new();
    for i in 0..9 {
        let mut c = connect(addr, APP).await;
        assert_eq!(c.join(ROOM, &format!("m{i}")).await, 0);
        members.push(c);
    }
    let mut late = connect(addr, APP).await;
    let t = token(ROOM, "late");
    late.send(&ClientFrame::Join {
        req: 1,
        token: &t,
        room: ROOM,
        user: "late",
        extra: "",
        visible: true,
    })
    .await;
    assert!(matches!(late.next_any().await, Got::Reply { code: 0, .. }));
    // Then one Member frame per member already there, each once.
    let mut seen = Vec::new();
    for _ in 0..9 {
        match late.next_any().await {
            Got::Member {
                user, joined: true, ..
            } => seen.push(user),
            g => panic!("expected a Member frame, got {g:?}"),
        }
    }
    seen.sort();
    let mut want: Vec<String> = (0..9).map(|i| format!("m{i}")).collect();
    want.sort();
    assert_eq!(seen, want);
    assert_eq!(late.ping().await, 0, "the joiner is still connected");
    server.shutdown().await.unwrap();
}
