//! The bare broadcast server: the practical ceiling of WebSocket fan-out on this machine.
//!
//! Clients connect to `ws://HOST:PORT/sub` and only receive; a publisher connects to `/pub`,
//! and each message it sends is written, as the same shared bytes, to every subscriber.
//! No protocol, no sessions, no sequence numbers: 4 KiB read buffers, one broadcast channel,
//! and writes batched while the channel has more (feed, then flush).
//!
//! Usage: `bare-server [ADDR]` (default `127.0.0.1:9100`).

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args().nth(1);
    let listener = TcpListener::bind(addr.as_deref().unwrap_or("127.0.0.1:9100")).await?;
    println!("bare-server listening on {}", listener.local_addr()?);
    let (tx, _) = broadcast::channel::<Message>(4096);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(serve(stream, tx.clone()));
    }
}

// The handshake callback's error type is tungstenite's (a whole HTTP response).
#[allow(clippy::result_large_err)]
async fn serve(stream: TcpStream, tx: broadcast::Sender<Message>) {
    let mut publisher = false;
    let check = |req: &Request, resp: Response| {
        publisher = req.uri().path() == "/pub";
        Ok(resp)
    };
    let config = WebSocketConfig::default().read_buffer_size(4096);
    let Ok(ws) = tokio_tungstenite::accept_hdr_async_with_config(stream, check, Some(config)).await
    else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    if publisher {
        while let Some(Ok(m)) = source.next().await {
            if m.is_binary() || m.is_text() {
                let _ = tx.send(m);
            }
        }
        return;
    }
    let mut rx = tx.subscribe();
    loop {
        tokio::select! {
            m = source.next() => if !matches!(m, Some(Ok(_))) { return },
            m = rx.recv() => {
                let Ok(mut m) = m else { return };
                loop {
                    if sink.feed(m).await.is_err() {
                        return;
                    }
                    match rx.try_recv() {
                        Ok(next) => m = next,
                        Err(_) => break,
                    }
                }
                if sink.flush().await.is_err() {
                    return;
                }
            }
        }
    }
}
