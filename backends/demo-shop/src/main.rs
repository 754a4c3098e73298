//! `demo-shop`: run the reference shop on its own.

use std::net::SocketAddr;

use clap::Parser;
use junction_demo_shop::{Seed, Shop, ShopConfig};

/// A shop backend shaped like the Magento 2 REST API, seeded with a
/// deterministic catalogue. Get a token with
/// `curl -X POST localhost:PORT/rest/V1/integration/admin/token -d '{"username":"admin","password":"admin123"}'`.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[arg(long, default_value_t = 200)]
    products: usize,
    #[arg(long, default_value_t = 50)]
    customers: usize,
    #[arg(long, default_value_t = 40)]
    orders: usize,
    #[arg(long, default_value_t = 10)]
    categories: usize,
    /// Requests per second before 429 responses.
    #[arg(long)]
    rate_limit: Option<u32>,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Serve products in the older 2.2 shape (top-level `qty`, `category_ids`).
    #[arg(long)]
    legacy: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let config = ShopConfig {
        seed: Seed {
            seed: args.seed,
            categories: args.categories,
            products: args.products,
            customers: args.customers,
            orders: args.orders,
        },
        rate_limit: args.rate_limit,
        legacy: args.legacy,
        ..ShopConfig::default()
    };
    let shop = Shop::start(config, args.listen).await?;
    eprintln!("demo-shop listening on {}", shop.base_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
