//! A session's side of relaying its user's messages to the app's business server
//! (`SetServerParams`, `SendServer`), over [`crate::callback`].
//!
//! The session checks the URL against the app's allow-list when the client sets it, then
//! hands each message to its own [`UserPipe`], which posts one message at a time (so the
//! business server sees one user's messages in the order sent) while other users' pipes run
//! concurrently. Outcomes come back in order as [`Pending`] futures the session awaits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::FuturesOrdered;
use rtm_protocol::code::Code;
use tokio::sync::oneshot;

use crate::callback::{
    AppCallback, CallbackConfig, CallbackError, OutMessage, Relay, RelayOutcome, UserPipe,
    ValidatedUrl,
};
use crate::config::AppConfig;

/// How long checking a callback URL (DNS included) may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The relay of every app: one HTTP client pool, one in-flight bound per app.
#[derive(Clone, Default)]
pub(crate) struct Relays {
    relay: Relay,
    apps: Arc<HashMap<String, AppCallback>>,
}

/// The callback settings of `app`, as the relay uses them.
pub(crate) fn callback_config(app: &AppConfig) -> Result<CallbackConfig, CallbackError> {
    Ok(
        CallbackConfig::new(&app.allow_callbacks, app.callback_secret.clone())?
            .with_timeout(Duration::from_millis(app.callback_timeout_ms))
            .with_max_in_flight(app.max_callbacks_in_flight.max(1)),
    )
}

impl Relays {
    /// Relays for `apps`; each app's allow-list was checked by `Config::validate`.
    pub(crate) fn new(apps: &[AppConfig]) -> Result<Self, CallbackError> {
        let mut map = HashMap::new();
        for a in apps {
            map.insert(a.app_id.clone(), AppCallback::new(callback_config(a)?));
        }
        Ok(Relays {
            relay: Relay::new(),
            apps: Arc::new(map),
        })
    }

    /// The same relays, counting their POSTs in `metrics`.
    pub(crate) fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.relay = Relay::with_metrics(metrics);
        self
    }

    /// The relay state of one session of `app_id`.
    pub(crate) fn session(&self, app_id: &str) -> SessionRelay {
        SessionRelay {
            relay: self.relay.clone(),
            app: self.apps.get(app_id).cloned(),
            params: None,
            pipe: None,
        }
    }
}

/// Where a session's messages go, as its client set them.
struct ServerParams {
    url: ValidatedUrl,
    signature: String,
}

/// An outcome the session is waiting for: the request id and the result.
pub(crate) type Pending =
    std::pin::Pin<Box<dyn std::future::Future<Output = (u32, RelayOutcome)> + Send>>;

/// The outcomes a session waits for, in the order its messages were sent.
pub(crate) type PendingQueue = FuturesOrdered<Pending>;

/// One session's relay: its parameters and its pipe.
pub(crate) struct SessionRelay {
    relay: Relay,
    app: Option<AppCallback>,
    params: Option<ServerParams>,
    pipe: Option<UserPipe>,
}

impl SessionRelay {
    /// Checks and keeps the parameters of a `SetServerParams` request. A failed request
    /// clears earlier parameters.
    pub(crate) async fn set_params(&mut self, signature: &str, url: &str) -> Code {
        self.params = None;
        if signature.is_empty() || url.is_empty() {
            return Code::InvalidParams;
        }
        let Some(app) = &self.app else {
            return Code::CallbackNotAllowed;
        };
        match tokio::time::timeout(CHECK_TIMEOUT, app.check_url(url)).await {
            Ok(Ok(url)) => {
                self.params = Some(ServerParams {
                    url,
                    signature: signature.to_owned(),
                });
                Code::Ok
            }
            Ok(Err(e)) => {
                tracing::debug!(url, error = %e, "callback URL refused");
                e.code()
            }
            Err(_) => Code::CallbackNotAllowed,
        }
    }

    /// Queues a `SendServer` message of a logged-in session; the outcome arrives through
    /// the returned future, or at once when the message cannot be queued.
    pub(crate) fn send(
        &mut self,
        req: u32,
        app_id: &str,
        user_id: &str,
        msg_id: u64,
        binary: bool,
        payload: &[u8],
    ) -> Result<Pending, Code> {
        let (Some(params), Some(app)) = (&self.params, &self.app) else {
            return Err(Code::ServerParamsNotSet);
        };
        if payload.is_empty() || payload.len() > rtm_protocol::MAX_MESSAGE_BYTES {
            return Err(Code::InvalidParams);
        }
        let pipe = self
            .pipe
            .get_or_insert_with(|| UserPipe::spawn(self.relay.clone(), app.clone()));
        let msg = OutMessage {
            app_id: app_id.to_owned(),
            user_id: user_id.to_owned(),
            msg_id,
            binary,
            payload: Bytes::copy_from_slice(payload),
            signature: params.signature.clone(),
        };
        let rx: oneshot::Receiver<RelayOutcome> =
            pipe.submit(params.url.clone(), msg).map_err(|e| e.code())?;
        Ok(Box::pin(async move {
            let outcome = rx.await.unwrap_or(RelayOutcome {
                code: Code::SendToServerError,
                body: Vec::new(),
            });
            (req, outcome)
        }))
    }
}
