//! The same suite in a dedicated Worker: no `window`, timers and `location` from the
//! worker's global scope.
#![cfg(target_arch = "wasm32")]

wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_dedicated_worker);

mod suite;
mod util;
