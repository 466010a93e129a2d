//! Serial consoles over gRPC (`photon.plasmavmc.v1.Console/Attach`, a bidirectional stream)
//! and over WebSocket (`websocket`, the same console for browsers and other clients): the
//! caller is authorized as `plasmavmc:vms:console` on the VM, then attached on this node when
//! its agent runs the VM (`local`), or relayed to the node that does (`relay`), with the
//! caller's own token, so that node decides again. Output is the console log followed as it
//! grows (any number of viewers); input goes into QEMU's console socket.

mod local;
mod relay;
pub mod websocket;

use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::Stream;
use photon_api::plasmavmc::v1::console_server::{Console, ConsoleServer};
use photon_api::plasmavmc::v1::{ConsoleInput, ConsoleOutput};
use photon_auth::AuthClient;
use photon_resource::{check_name, Kind, Layout, Owner, Resource, Store};
use tonic::{Request, Response, Status, Streaming};

use crate::model::status::VmStatus;
use crate::model::vm::VmSpec;
use crate::model::Vm;

/// The gRPC path the guard leaves to this service to decide.
pub const METHODS: &str = "/photon.plasmavmc.v1.Console/{method}";

/// Bytes of console log replayed at most.
const MAX_BACKLOG: u32 = 1 << 20;

pub type Output = Pin<Box<dyn Stream<Item = Result<ConsoleOutput, Status>> + Send>>;

pub struct ConsoleService {
    pub store: Store,
    pub layout: Layout,
    pub auth: Arc<AuthClient>,
    /// This node's name and run directory, when its agent runs VMs.
    pub local: Option<(String, PathBuf)>,
    /// The CA other nodes' API certificates are checked against.
    pub trust: Option<PathBuf>,
}

/// The gRPC service over a shared `ConsoleService` (the WebSocket route shares it too).
pub struct Grpc(Arc<ConsoleService>);

impl ConsoleService {
    pub fn server(self: &Arc<Self>) -> ConsoleServer<Grpc> {
        ConsoleServer::new(Grpc(self.clone()))
    }
}

/// What the caller types, as it comes.
pub type Input = tokio::sync::mpsc::Receiver<Vec<u8>>;

impl ConsoleService {
    /// Attaches `token`'s caller to the console `first` names (with `first.data` typed first),
    /// the rest of the input from `input`.
    pub async fn open(&self, token: &str, first: ConsoleInput, input: Input) -> Result<Output, Status> {
        for (field, value) in [("org", &first.org), ("project", &first.project), ("vm", &first.vm)] {
            check_name(field, value).map_err(|e| Status::invalid_argument(format!("{}: {}", e.field, e.message)))?;
        }
        let resource = format!("orgs/{}/projects/{}/vms/{}", first.org, first.project, first.vm);
        self.auth.authorize(token, "plasmavmc:vms:console", &resource).await.map_err(|e| e.status())?;
        let owner = Owner::new(first.org.clone(), first.project.clone());
        let key = self.layout.key(&owner, Vm::PATH, &[], &first.vm);
        let stored = self.store.get::<Resource<VmSpec>>(&key).await.map_err(|e| Status::unavailable(e.to_string()))?;
        let vm = stored.ok_or_else(|| Status::not_found(format!("VM {} not found", first.vm)))?.value;
        let status = VmStatus::of(&vm);
        let Some(node) = status.node else {
            return Err(Status::failed_precondition(format!("VM {} is {}: not on a node yet", first.vm, status.state.as_str())));
        };
        let backlog = first.backlog.min(MAX_BACKLOG);
        match &self.local {
            Some((here, run_dir)) if *here == node => {
                let dir = run_dir.join(&vm.metadata.uid);
                local::attach(dir, backlog, first.data, input).await
            }
            _ => relay::attach(&self.store, self.trust.as_deref(), &node, token, first, input).await,
        }
    }
}

/// A receiver as a stream (what tonic and axum take).
pub fn stream<T: Send + 'static>(rx: tokio::sync::mpsc::Receiver<T>) -> impl Stream<Item = T> + Send {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

#[tonic::async_trait]
impl Console for Grpc {
    type AttachStream = Output;

    async fn attach(&self, request: Request<Streaming<ConsoleInput>>) -> Result<Response<Output>, Status> {
        let headers = request.metadata().clone().into_headers();
        let token = photon_auth::guard::bearer(&headers).map_err(|e| e.status())?;
        let mut inbound = request.into_inner();
        let first = inbound.message().await?.ok_or_else(|| Status::invalid_argument("the first message names the VM"))?;
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tokio::spawn(async move {
            while let Ok(Some(input)) = inbound.message().await {
                if tx.send(input.data).await.is_err() {
                    return;
                }
            }
        });
        self.0.open(&token, first, rx).await.map(Response::new)
    }
}
