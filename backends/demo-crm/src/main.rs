//! `demo-crm`: run the reference CRM on its own.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use junction_demo_crm::{Crm, CrmConfig, Seed};

/// A CRM backend shaped like HubSpot's CRM v3 API, seeded with
/// deterministic contacts, companies and deals. Get a token with
/// `curl -X POST localhost:PORT/oauth/v1/token -d grant_type=client_credentials -d client_id=junction -d client_secret=crm-secret`.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    #[arg(long, default_value_t = 20)]
    companies: usize,
    #[arg(long, default_value_t = 100)]
    contacts: usize,
    #[arg(long, default_value_t = 40)]
    deals: usize,
    #[arg(long, default_value = "junction")]
    client_id: String,
    #[arg(long, default_value = "crm-secret")]
    client_secret: String,
    /// Access token lifetime in seconds.
    #[arg(long, default_value_t = 1800)]
    token_lifetime: u64,
    /// Requests per second before 429 responses.
    #[arg(long)]
    rate_limit: Option<u32>,
    #[arg(long, default_value_t = 7)]
    seed: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = CrmConfig {
        seed: Seed {
            seed: args.seed,
            companies: args.companies,
            contacts: args.contacts,
            deals: args.deals,
        },
        client_id: args.client_id,
        client_secret: args.client_secret,
        token_lifetime: Duration::from_secs(args.token_lifetime),
        rate_limit: args.rate_limit,
        webhook: None,
    };
    let crm = Crm::start(config, args.listen).await?;
    eprintln!("demo-crm listening on {}", crm.base_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
