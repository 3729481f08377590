//! The `keyfort` binary: `dev` and `server` run a node; every other command
//! is a client of a running node.

mod advisor;
mod alert;
mod audit;
mod certificate;
mod client;
mod connection;
mod directory;
mod event;
mod key;
mod objects;
mod operator;
mod output;
mod pim;
mod role;
mod secret;
mod vault;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "keyfort",
    version,
    about = "Keyfort: a self-hosted vault that speaks the Azure Key Vault API"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run everything on this machine for development: a local CA, one tenant,
    /// one vault ('dev') and one service principal, unsealed by a key file.
    Dev {
        /// Folder for data, keys, certificates and dev.json.
        #[arg(long, default_value = ".keyfort", env = "KEYFORT_DEV_DATA_DIR")]
        data_dir: PathBuf,
        /// HTTPS port.
        #[arg(long, default_value_t = 8443, env = "KEYFORT_DEV_PORT")]
        port: u16,
        /// Create the dev vault with purge protection on (first start only).
        #[arg(long)]
        purge_protection: bool,
        /// Also send every audit record to this webhook (JSON lines).
        #[arg(long, env = "KEYFORT_DEV_AUDIT_WEBHOOK")]
        audit_webhook: Option<String>,
    },
    /// Run a production node from a configuration file (every setting may
    /// also come from a KEYFORT_* environment variable).
    Server {
        #[arg(long, env = "KEYFORT_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Manage secrets in a vault.
    #[command(subcommand)]
    Secret(secret::SecretCommand),
    /// Manage keys in a vault and use them (encrypt, sign, wrap, ...).
    #[command(subcommand)]
    Key(key::KeyCommand),
    /// Manage certificates in a vault (self-signed, CSR + merge, import).
    #[command(subcommand)]
    Certificate(certificate::CertificateCommand),
    /// Administer a node (runs next to its data, not through the API).
    #[command(subcommand)]
    Operator(operator::OperatorCommand),
    /// Manage vaults (the management API).
    #[command(subcommand)]
    Vault(vault::VaultCommand),
    /// Role definitions and role assignments of a vault.
    #[command(subcommand)]
    Role(role::RoleCommand),
    /// Tenants (server operators only).
    #[command(subcommand)]
    Tenant(directory::TenantCommand),
    /// Service principals of your tenant.
    #[command(subcommand)]
    Principal(directory::PrincipalCommand),
    /// Users (password + TOTP) of your tenant.
    #[command(subcommand)]
    User(directory::UserCommand),
    /// Just-in-time access: policies, eligibility, activation and approval.
    #[command(subcommand)]
    Pim(pim::PimCommand),
    /// Check vaults against the Key Vault best practices.
    Advisor(advisor::AdvisorArgs),
    /// Webhook subscriptions to vault events.
    #[command(subcommand)]
    Event(event::EventCommand),
    /// Alert rules over the audit stream, and what fired.
    #[command(subcommand)]
    Alert(alert::AlertCommand),
    /// The audit trail.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Sign in and cache tokens for later commands (a user with --username, or the client credentials).
    Login {
        #[command(flatten)]
        conn: connection::ConnectionArgs,
        #[arg(long)]
        username: Option<String>,
        /// The password; '-' reads it from standard input.
        #[arg(long, default_value = "-")]
        password: String,
        /// The current code of your authenticator app (gives the token MFA).
        #[arg(long)]
        otp: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Dev {
                data_dir,
                port,
                purge_protection,
                audit_webhook,
            } => {
                init_logging();
                keyfort_server::dev::run(keyfort_server::dev::DevOptions {
                    data_dir,
                    port,
                    purge_protection,
                    audit_webhook,
                })
                .await
            }
            Command::Server { config } => {
                init_logging();
                run_server(config).await
            }
            Command::Secret(cmd) => secret::run(cmd).await,
            Command::Key(cmd) => key::run(cmd).await,
            Command::Certificate(cmd) => certificate::run(cmd).await,
            Command::Operator(cmd) => operator::run(cmd).await,
            Command::Vault(cmd) => vault::run(cmd).await,
            Command::Role(cmd) => role::run(cmd).await,
            Command::Pim(cmd) => pim::run(cmd).await,
            Command::Audit(cmd) => audit::run(cmd).await,
            Command::Alert(cmd) => alert::run(cmd).await,
            Command::Event(cmd) => event::run(cmd).await,
            Command::Advisor(args) => advisor::run(args).await,
            Command::Tenant(cmd) => directory::tenant(cmd).await,
            Command::Principal(cmd) => directory::principal(cmd).await,
            Command::User(cmd) => directory::user(cmd).await,
            Command::Login {
                conn,
                username,
                password,
                otp,
            } => directory::login(conn, username, password, otp).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run_server(config: Option<PathBuf>) -> Result<(), keyfort_server::serve::BoxError> {
    let config =
        keyfort_server::config::Config::load(config.as_deref(), |k| std::env::var(k).ok())?;
    let setup = keyfort_server::serve::setup_from_config(&config)?;
    let (state, parts) = keyfort_server::serve::open(setup).await?;
    let signals = keyfort_server::serve::Signals::install()?;
    let running = keyfort_server::serve::spawn(state, parts).await?;
    tracing::info!(addr = %running.addr, "keyfort is serving");
    keyfort_server::serve::serve_until_signalled(running, signals).await
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEYFORT_LOG")
        .unwrap_or_else(|_| "info".into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
