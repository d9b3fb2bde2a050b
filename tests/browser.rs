//! The SDK in a page of headless Chromium against a real `rtm-server` (see `suite/mod.rs`).
#![cfg(target_arch = "wasm32")]

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

mod suite;
mod util;
