use purchase_service::configuration::Settings;
use purchase_service::startup::Application;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    common::telemetry::init(&settings.app);
    Application::build(settings)
        .await?
        .run_until_stopped()
        .await?;
    Ok(())
}
