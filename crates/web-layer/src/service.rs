//! How a service binary runs, the same way for all four: its command line (`serve`, also
//! when no subcommand is given, or one of the service's own subcommands), its settings
//! loaded and telemetry started before anything else, then what every service connects
//! to ([`Infrastructure`]), the service started on it, and served until SIGINT/SIGTERM.
//! Each service's `startup::Application` implements [`Service`]; its tests build it with
//! the same [`Service::build`] the binary uses.

use crate::bootstrap::Infrastructure;
use actix_web::dev::{Server, ServerHandle};
use clap::{ArgMatches, Subcommand};
use common::config::{OwnSettings, Settings};

/// A service: started on its infrastructure from its settings, it runs until stopped.
pub trait Service {
    /// The settings only this service reads, beside the shared sections.
    type Own: OwnSettings;
    /// What the service is once started: at least its HTTP server.
    type Running: Running;

    /// Starts the service on what every service connects to: its background work
    /// running, its HTTP server bound (serving once awaited, see [`Running`]).
    fn start(
        settings: Settings<Self::Own>,
        infrastructure: Infrastructure,
    ) -> impl Future<Output = anyhow::Result<Self::Running>>;

    /// Connects the infrastructure (lazily: a server that is down makes requests answer
    /// `SYSTEM_BUSY` until it is back), then starts the service on it.
    fn build(settings: Settings<Self::Own>) -> impl Future<Output = anyhow::Result<Self::Running>> {
        async {
            let infrastructure = Infrastructure::connect(&settings).await?;
            Self::start(settings, infrastructure).await
        }
    }
}

/// A service once started.
pub trait Running {
    /// The port its HTTP server bound (tests ask for port 0: any free one).
    fn port(&self) -> u16;

    /// Serves until SIGINT/SIGTERM, then stops the way the service must (in-flight
    /// requests answered first).
    fn run_until_stopped(self) -> impl Future<Output = anyhow::Result<()>> + 'static;
}

/// A service's HTTP server on its bound port: all that runs of a service that has
/// nothing beside it (auth-service, catalog-service).
pub struct Serving {
    port: u16,
    server: Server,
}

impl Serving {
    pub fn new(port: u16, server: Server) -> Self {
        Serving { port, server }
    }

    /// Stops the server as SIGTERM does.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// The server itself, for a service that runs other work beside it.
    pub fn into_server(self) -> Server {
        self.server
    }
}

impl Running for Serving {
    fn port(&self) -> u16 {
        self.port
    }

    async fn run_until_stopped(self) -> anyhow::Result<()> {
        Ok(self.server.await?)
    }
}

/// What a service binary was asked to do.
#[derive(Debug, PartialEq, Eq)]
pub enum Invocation<Own> {
    /// Serve (the default, when no subcommand is given).
    Serve,
    /// One of the service's own subcommands.
    Own(Own),
}

/// The `serve` subcommand every service has, beside its own.
#[derive(Subcommand)]
enum Shared {
    /// Serve until SIGINT/SIGTERM (the default).
    Serve,
}

impl<Own: Subcommand> Invocation<Own> {
    /// The binary's command line (name, version and about from `binary`, usually
    /// `clap::command!()`): `serve` and the service's own subcommands, none required.
    pub fn command_line(binary: clap::Command) -> clap::Command {
        // Augmenting takes the subcommand enums' doc comments as the about: keep the binary's.
        let about = binary.get_about().cloned();
        let command_line = Own::augment_subcommands(Shared::augment_subcommands(binary))
            .subcommand_required(false)
            .long_about(None::<&str>);
        match about {
            Some(about) => command_line.about(about),
            None => command_line.about(None::<&str>),
        }
    }

    /// Reads parsed arguments: no subcommand or `serve` is [`Invocation::Serve`].
    pub fn from_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        match matches.subcommand_name() {
            None => Ok(Invocation::Serve),
            Some(name) if Shared::has_subcommand(name) => Ok(Invocation::Serve),
            Some(_) => Own::from_arg_matches(matches).map(Invocation::Own),
        }
    }
}

/// A service binary's `main`: parses its command line (`binary`, see
/// [`Invocation::command_line`]), loads its settings, starts telemetry and the Tokio
/// runtime, then serves or runs the subcommand with `own`.
pub fn main<S, Own, Run, Ran>(binary: clap::Command, own: Run) -> anyhow::Result<()>
where
    S: Service,
    Own: Subcommand,
    Run: FnOnce(Own, Settings<S::Own>) -> Ran,
    Ran: Future<Output = anyhow::Result<()>>,
{
    let matches = Invocation::<Own>::command_line(binary).get_matches();
    let invocation = Invocation::<Own>::from_matches(&matches).unwrap_or_else(|e| e.exit());
    let settings = Settings::<S::Own>::load()?;
    common::telemetry::init(&settings.app);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match invocation {
            Invocation::Serve => serve::<S>(settings).await,
            Invocation::Own(command) => own(command, settings).await,
        }
    })
}

/// Builds the service and serves until SIGINT/SIGTERM.
pub async fn serve<S: Service>(settings: Settings<S::Own>) -> anyhow::Result<()> {
    S::build(settings).await?.run_until_stopped().await
}

/// The subcommands of a service that has none of its own.
#[derive(Debug, PartialEq, Eq, Subcommand)]
pub enum NoSubcommand {}

impl NoSubcommand {
    /// What runs such a service's subcommands: there are none to run.
    pub async fn run<Own>(self, _: Settings<Own>) -> anyhow::Result<()> {
        match self {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq, Subcommand)]
    enum Command {
        /// A subcommand of the service's own.
        SyncStock { item_id: Option<u64> },
    }

    fn parse(args: &[&str]) -> Result<Invocation<Command>, clap::Error> {
        let binary = clap::Command::new("some-service");
        let matches = Invocation::<Command>::command_line(binary).try_get_matches_from(args)?;
        Invocation::from_matches(&matches)
    }

    #[test]
    fn no_subcommand_and_serve_both_serve() {
        assert_eq!(parse(&["some-service"]).unwrap(), Invocation::Serve);
        assert_eq!(
            parse(&["some-service", "serve"]).unwrap(),
            Invocation::Serve
        );
    }

    #[test]
    fn the_services_own_subcommands_are_parsed_with_their_arguments() {
        assert_eq!(
            parse(&["some-service", "sync-stock", "42"]).unwrap(),
            Invocation::Own(Command::SyncStock { item_id: Some(42) })
        );
        assert_eq!(
            parse(&["some-service", "sync-stock"]).unwrap(),
            Invocation::Own(Command::SyncStock { item_id: None })
        );
    }

    #[test]
    fn an_unknown_subcommand_or_argument_is_refused() {
        assert!(parse(&["some-service", "launch"]).is_err());
        assert!(parse(&["some-service", "serve", "--now"]).is_err());
        assert!(
            parse(&["some-service", "sync-stock", "many"]).is_err(),
            "the item id is a number"
        );
    }

    #[test]
    fn the_help_says_what_the_binary_is_about() {
        let binary = clap::Command::new("some-service").about("Sells lamps.");
        let mut command_line = Invocation::<Command>::command_line(binary);
        let help = command_line.render_help().to_string();
        assert!(help.starts_with("Sells lamps."), "{help}");
    }

    #[test]
    fn a_service_without_subcommands_only_serves() {
        let binary = clap::Command::new("purchase-service");
        let command_line = Invocation::<NoSubcommand>::command_line(binary);
        let names: Vec<&str> = command_line
            .get_subcommands()
            .map(|c| c.get_name())
            .collect();
        assert_eq!(names, ["serve"]);
    }
}
