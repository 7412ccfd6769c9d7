//! `mock-upstream`: the in-repo mock provider as a process, for scripts, demos and benchmarks. A thin CLI
//! over `aibridged::mock`; it must not grow behaviour of its own.

use aibridged::mock::{AwsCredentials, MockOptions, MockUpstream};
use clap::Parser;
use std::io::Write;

/// Command line of the mock upstream.
#[derive(Parser, Debug)]
#[command(name = "mock-upstream", about = "Mock OpenAI / Anthropic / Bedrock upstream for tests and benchmarks")]
struct Args {
    /// Address to listen on; port 0 picks a free port (printed on stdout).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    /// Do not keep received requests (load tests: flat memory).
    #[arg(long)]
    no_record: bool,
    /// Verify SigV4 on Bedrock routes with this access key (needs --aws-secret and --aws-region).
    #[arg(long, env = "MOCK_AWS_ACCESS_KEY", requires_all = ["aws_secret", "aws_region"])]
    aws_access_key: Option<String>,
    /// Secret for --aws-access-key.
    #[arg(long, env = "MOCK_AWS_SECRET", hide_env_values = true)]
    aws_secret: Option<String>,
    /// Region for --aws-access-key.
    #[arg(long, env = "MOCK_AWS_REGION")]
    aws_region: Option<String>,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let aws = match (args.aws_access_key, args.aws_secret, args.aws_region) {
        (Some(access_key), Some(secret), Some(region)) => Some(AwsCredentials { access_key, secret, region }),
        _ => None,
    };
    let opts = MockOptions { record: !args.no_record, aws };
    let mock = match MockUpstream::start_with(&args.listen, opts) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("mock-upstream: cannot listen on {}: {e}", args.listen);
            return std::process::ExitCode::FAILURE;
        }
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "listening on {}", mock.addr());
    let _ = out.flush();
    drop(out);
    mock.wait();
    std::process::ExitCode::SUCCESS
}
