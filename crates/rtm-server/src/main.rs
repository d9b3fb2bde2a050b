//! `rtm-server serve ...` runs the server; `rtm-server token ...` prints a "001" token.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Parser, Subcommand};
use rtm_server::{AppConfig, Config};

/// The rtm reference server.
#[derive(Debug, Parser)]
#[command(name = "rtm-server", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(Box<ServeArgs>),
    /// Print a "001" access token.
    Token(TokenArgs),
    /// Run the demo business server: receives relayed messages, answers them, and pushes
    /// back through the OpenAPI (`/echo TEXT`, `/announce ROOM TEXT`, `/fail`, `/slow MS`).
    BusinessDemo(BizDemoArgs),
}

#[derive(Debug, Args)]
struct BizDemoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// The rtm server's base URL, for OpenAPI calls.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    rtm_url: String,
    /// The AppID to push to.
    #[arg(long)]
    app_id: String,
    /// The OpenAPI access key.
    #[arg(long)]
    access_key: String,
    /// The OpenAPI secret key.
    #[arg(long)]
    secret_key: String,
    /// The secret rtm-server signs callbacks with (empty: callbacks are not verified).
    #[arg(long, default_value = "")]
    callback_secret: String,
    /// Log as JSON lines.
    #[arg(long)]
    log_json: bool,
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on [default: the config's `listen`, else 127.0.0.1:8080].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// A TOML config file with one or more apps.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Quick start: the AppID (24 characters) of a single app.
    #[arg(long, requires_all = ["app_key", "access_key", "secret_key"])]
    app_id: Option<String>,
    /// Quick start: the app's AppKey.
    #[arg(long, requires = "app_id")]
    app_key: Option<String>,
    /// Quick start: the app's OpenAPI access key.
    #[arg(long, requires = "app_id")]
    access_key: Option<String>,
    /// Quick start: the app's OpenAPI secret key.
    #[arg(long, requires = "app_id")]
    secret_key: Option<String>,
    /// Serve static files from this directory (GET / serves its index.html).
    #[arg(long = "static", value_name = "DIR")]
    static_dir: Option<PathBuf>,
    /// Allow browsers from ORIGIN (`*` for any) to call the OpenAPI and /demo/token.
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
    /// Enable GET /demo/token?user=U&room=R (tokens for the first app).
    #[arg(long)]
    demo: bool,
    /// Close connections that neither log in nor join within this many milliseconds.
    #[arg(long)]
    auth_timeout_ms: Option<u64>,
    /// Quick start: a URL prefix business-server callbacks may go to (repeatable).
    #[arg(
        long = "allow-callback",
        value_name = "URL_PREFIX",
        requires = "app_id"
    )]
    allow_callbacks: Vec<String>,
    /// Quick start: the secret that signs business-server callbacks.
    #[arg(long, requires = "app_id")]
    callback_secret: Option<String>,
    /// Quick start: how long a business-server callback may take, in milliseconds.
    #[arg(long, requires = "app_id", default_value_t = 5000)]
    callback_timeout_ms: u64,
    /// Demo mode: the demo business server's base URL, offered to the page by /demo/config.
    #[arg(long, requires = "demo", value_name = "URL")]
    demo_business_url: Option<String>,
    /// Log as JSON lines (filter with RUST_LOG, default info).
    #[arg(long)]
    log_json: bool,
    /// Run as a node of a cluster on this Redis (`redis://host:port[/db]`); without it the
    /// server is a single node, everything in memory.
    #[arg(long, env = "RTM_REDIS_URL", value_name = "URL")]
    redis_url: Option<String>,
    /// This node's id in the cluster [default: random].
    #[arg(long, requires = "redis_url")]
    node_id: Option<String>,
    /// How long a node's presence outlives its last heartbeat, in milliseconds
    /// [default: 15000].
    #[arg(long, requires = "redis_url")]
    cluster_ttl_ms: Option<u64>,
}

#[derive(Debug, Args)]
struct TokenArgs {
    /// The AppID (24 characters).
    #[arg(long)]
    app_id: String,
    /// The AppKey that signs the token.
    #[arg(long)]
    app_key: String,
    /// The user id.
    #[arg(long)]
    user: String,
    /// The room id; absent for a login token.
    #[arg(long, default_value = "")]
    room: String,
    /// Validity in seconds from now; 0 = never expires.
    #[arg(long, default_value_t = rtm_server::DEFAULT_TOKEN_TTL_SECS)]
    expire: u32,
}

fn config_from(args: &ServeArgs) -> Result<Config, String> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path).map_err(|e| e.to_string())?,
        None => Config::default(),
    };
    if let (Some(id), Some(key), Some(ak), Some(sk)) = (
        &args.app_id,
        &args.app_key,
        &args.access_key,
        &args.secret_key,
    ) {
        let mut app = AppConfig::new(id, key, ak, sk);
        app.allow_callbacks = args.allow_callbacks.clone();
        app.callback_secret = args.callback_secret.clone();
        app.callback_timeout_ms = args.callback_timeout_ms;
        config.apps.insert(0, app);
    }
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(t) = args.auth_timeout_ms {
        config.auth_timeout_ms = t;
    }
    if args.static_dir.is_some() {
        config.static_dir = args.static_dir.clone();
    }
    config
        .cors_origins
        .extend(args.cors_origins.iter().cloned());
    config.demo |= args.demo;
    if args.redis_url.is_some() {
        config.redis_url = args.redis_url.clone();
    }
    if args.node_id.is_some() {
        config.node_id = args.node_id.clone();
    }
    if let Some(t) = args.cluster_ttl_ms {
        config.cluster_ttl_ms = t;
    }
    if args.demo_business_url.is_some() {
        config.demo_business_url = args.demo_business_url.clone();
    }
    if config.apps.is_empty() {
        return Err(
            "no app: pass --config FILE or --app-id, --app-key, --access-key and --secret-key"
                .into(),
        );
    }
    config.validate().map_err(|e| e.to_string())?;
    Ok(config)
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Serves on a single-threaded runtime that accepts connections and answers HTTP, with the
/// WebSocket sessions on a multi-threaded one (`rtm_server::run_on`).
fn serve(args: &ServeArgs) -> ExitCode {
    let runtimes = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("rtm-sessions")
        .build()
        .and_then(|sessions| {
            let front = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Ok((sessions, front))
        });
    let (sessions, front) = match runtimes {
        Ok(rts) => rts,
        Err(e) => {
            eprintln!("rtm-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let r = front.block_on(async {
        let config = config_from(args)?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        rtm_server::run_on(
            config,
            listener,
            shutdown_signal(),
            sessions.handle().clone(),
        )
        .await
        .map_err(|e| e.to_string())
    });
    exit(r)
}

async fn business_demo(args: BizDemoArgs) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    tracing::info!(addr = %args.listen, rtm = %args.rtm_url, "demo business server listening");
    let opts = rtm_server::bizdemo::BizDemoOptions {
        rtm_url: args.rtm_url,
        app_id: args.app_id,
        access_key: args.access_key,
        secret_key: args.secret_key,
        callback_secret: args.callback_secret,
    };
    tokio::select! {
        r = rtm_server::bizdemo::run(opts, listener) => r.map_err(|e| e.to_string()),
        () = shutdown_signal() => Ok(()),
    }
}

/// Runs `f` on a new multi-threaded runtime, printing its error.
fn block_on<F: std::future::Future<Output = Result<(), String>>>(f: F) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("rtm-server: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    exit(rt.block_on(f))
}

fn exit(r: Result<(), String>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rtm-server: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::BusinessDemo(args) => {
            init_logging(args.log_json);
            block_on(business_demo(args))
        }
        Command::Token(t) => {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0);
            match rtm_server::issue_token(&t.app_id, &t.app_key, &t.room, &t.user, now, t.expire) {
                Ok(token) => {
                    println!("{token}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("rtm-server token: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Serve(args) => {
            init_logging(args.log_json);
            serve(&args)
        }
    }
}
