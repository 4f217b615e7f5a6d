//! `warden client`: register, list, show and delete the OAuth clients people sign in through
//! (web, native and browser apps) on the running server.

use clap::Subcommand;
use warden_api::admin::{Call, Client, CreateClient};

use super::{connect, print, Common, Outcome};

#[derive(Debug, clap::Args)]
pub(super) struct ClientArgs {
    #[command(subcommand)]
    action: ClientAction,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Subcommand)]
enum ClientAction {
    /// Register a client; prints its id, and a confidential client's secret, once.
    Create {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        name: String,
        /// Where codes may be sent, written exactly as the client will send it; repeat for
        /// several.
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// A native or browser app that can keep no secret: it gets none, and proves each
        /// code with PKCE alone.
        #[arg(long)]
        public: bool,
    },
    List {
        #[arg(long)]
        tenant: String,
    },
    Show {
        client: String,
    },
    /// Remove a client: it can start no sign-in from then on.
    Delete {
        client: String,
    },
}

pub(super) async fn run(args: ClientArgs) -> anyhow::Result<Outcome> {
    let ClientArgs { action, common } = args;
    let admin = connect(&common)?;
    let out = match action {
        ClientAction::Create {
            tenant,
            name,
            redirect_uris,
            public,
        } => {
            let body = CreateClient {
                name,
                redirect_uris,
                public,
            };
            admin
                .call_as::<Client>(Call::CreateClient(tenant, body))
                .await?
        }
        ClientAction::List { tenant } => {
            admin
                .call_as::<Vec<Client>>(Call::ListClients(tenant))
                .await?
        }
        ClientAction::Show { client } => admin.call_as::<Client>(Call::ShowClient(client)).await?,
        ClientAction::Delete { client } => {
            admin.call_as::<Client>(Call::DeleteClient(client)).await?
        }
    };
    print(&out, common.json);
    Ok(Outcome::Done)
}
