//! The tests' delaying DNS responder as a standalone program, for
//! scripts/bench-dns.sh: `dns_responder ADDR DELAY_MS [NAMES]` answers A and
//! AAAA for `a.test` and `n0.test` .. `n{NAMES-1}.test` after DELAY_MS, prints
//! its address, and serves until killed. Loopback addresses only.

#[allow(dead_code)] // the tests use more of it than this program does
#[path = "../tests/support/dns_responder.rs"]
mod dns_responder;

use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: dns_responder ADDR DELAY_MS [NAMES]");
        std::process::exit(2);
    }
    let addr: std::net::SocketAddr = match args[1].parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{}: {e}", args[1]);
            std::process::exit(2);
        }
    };
    if !addr.ip().is_loopback() {
        eprintln!("{addr}: only loopback addresses are allowed");
        std::process::exit(2);
    }
    let delay = args[2].parse::<f64>().unwrap_or(0.0);
    let count = args
        .get(3)
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(0);
    let mut names: Vec<String> = (0..count).map(|i| format!("n{i}.test")).collect();
    names.push("a.test".into());
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let responder = dns_responder::Responder::start(addr, dns_responder::Zone::new(&refs, &[]));
    responder.set_delay(Duration::from_secs_f64(delay / 1000.0));
    println!("{}", responder.addr);
    loop {
        std::thread::park();
    }
}
