//! Frames shared by the engine's test files.

use rtm_protocol::frame::{encode_server, Push, PushKind, ServerFrame};

/// A text push outside rooms from `svc`, numbered `seq`.
pub fn text_push(seq: u64, text: &str) -> Vec<u8> {
    encode_server(&ServerFrame::Push {
        seq,
        push: Push {
            kind: PushKind::OutsideRoom,
            room: "",
            from: "svc",
            binary: false,
            payload: text.as_bytes(),
        },
    })
}
