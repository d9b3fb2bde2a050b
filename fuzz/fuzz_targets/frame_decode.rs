//! The frame decoders and the batch splitter on arbitrary bytes: they never panic, and
//! whatever decodes re-encodes (in the shortest form) to bytes that decode to the same frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rtm_protocol::frame::{
    decode_client, decode_server, encode_client, encode_push_body, encode_push_frame,
    encode_server, peek_req, server_frames, ServerFrame,
};

fuzz_target!(|data: &[u8]| {
    // The server's side: what a client may send.
    let peeked = peek_req(data);
    if let Ok(f) = decode_client(data) {
        let again = encode_client(&f);
        assert!(again.len() <= data.len(), "re-encoding grew: {f:?}");
        assert_eq!(decode_client(&again).as_ref(), Ok(&f));
        // A frame that decodes has a request id, and peek_req finds the same one.
        assert!(peeked.is_some(), "no request id in {f:?}");
        assert_eq!(peek_req(&again), peeked);
    }

    // The client's side: what the server may send.
    if let Ok(f) = decode_server(data) {
        let again = encode_server(&f);
        assert!(again.len() <= data.len(), "re-encoding grew: {f:?}");
        assert_eq!(decode_server(&again).as_ref(), Ok(&f));
        // Encoding a broadcast once and prefixing the sequence number is the same frame.
        if let ServerFrame::Push { seq, push } = &f {
            assert_eq!(encode_push_frame(*seq, &encode_push_body(push)), again);
        }
    }
    // The same bytes as a message that may be a batch: split, each frame decoded, and
    // nothing after an error in the batch.
    let mut failed = false;
    for f in server_frames(data) {
        assert!(!failed, "a frame after a split error");
        failed = f.is_err();
        if let Ok(f) = f {
            let _ = decode_server(f);
        }
    }
});
