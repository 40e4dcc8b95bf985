#[tokio::main]
async fn main() -> std::process::ExitCode {
    heartsuite::cli::main().await
}
