//! The management API on 9090: flavours, images and VMs as REST under
//! `/api/v1/orgs/{org}/projects/{project}/{flavors,images,vms}` (photon-resource's routes, each
//! authorized by IAM through photon-auth's guard) and as gRPC (`photon.resource.v1.Resources`),
//! plus the VM actions `POST .../vms/{name}/{start,stop,reboot,migrate[?node=N]}`
//! (`plasmavmc:vms:update`), each
//! a change of the VM's spec the agent carries out; the reply is the VM, 202; and the upload of
//! an image's part, `PUT .../images/{name}/parts/{part}` (`plasmavmc:images:update`).
//!
//! A VM is checked against what is stored when created: its flavour and image must exist in its
//! project, the flavour must fit on some node, and each NIC's subnet must exist in PrismNET, so
//! nothing is created that could never run.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::http::HeaderMap;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use photon_api::resource::v1::resources_server::ResourcesServer;
use photon_auth::{AuthClient, Rule};
use photon_resource::grpc::Grpc;
use photon_resource::rest::{collection_path, Routes};
use photon_resource::{Assign, Assigning, FieldError, Kind, Owner, Placing, Resource, ResourceError, Resources};

use crate::import::Importer;
use crate::model::flavor::FlavorSpec;
use crate::model::image::{ImageSpec, PUBLIC_ORG, PUBLIC_PROJECT};
use crate::model::vm::{Power, VmSpec};
use crate::model::{Flavor, Image, Vm};
use crate::network::Network;
use crate::storage::Storage;
use crate::nodes::{self, NodeRecord};

/// The router, the gRPC service of the same resources, and the IAM rule of each route.
pub fn router(resources: Resources, auth: Arc<AuthClient>, importer: Arc<Importer>) -> (Router, Vec<Rule>, ResourcesServer<Grpc>) {
    let routes = Routes::new("plasmavmc").kind::<Flavor>().kind::<Image>().kind::<Vm>();
    let auth_client = auth.clone();
    let grpc = routes.grpc(resources.clone(), auth);
    let (router, mut rules) = routes.finish(resources.clone());
    let action = format!("{}/{{name}}/{{action}}", collection_path(Vm::PATH));
    rules.push(Rule::new(
        Some(Method::POST),
        &action,
        "plasmavmc:vms:update",
        "orgs/{org}/projects/{project}/vms/{name}",
    ));
    let actions = Router::new().route(&action, post(act)).with_state(resources.clone());
    let part = format!("{}/{{name}}/parts/{{part}}", collection_path(Image::PATH));
    rules.push(Rule::new(
        Some(Method::PUT),
        &part,
        "plasmavmc:images:update",
        "orgs/{org}/projects/{project}/images/{name}",
    ));
    let uploads = Router::new().route(&part, put(upload)).with_state((resources.clone(), importer));
    // The platform's public images, readable by anyone signed in (each handler checks the token).
    rules.push(Rule::by_handler(Some(Method::GET), PUBLIC_IMAGES));
    rules.push(Rule::by_handler(Some(Method::GET), &format!("{PUBLIC_IMAGES}/{{name}}")));
    let public = Router::new()
        .route(PUBLIC_IMAGES, get(public_images))
        .route(&format!("{PUBLIC_IMAGES}/{{name}}"), get(public_image))
        .with_state((resources, auth_client));
    (router.merge(actions).merge(uploads).merge(public), rules, grpc)
}

/// Where the platform's public images (project `platform/public`) are listed for every tenant.
const PUBLIC_IMAGES: &str = "/api/v1/public/images";

/// The caller is signed in (any valid token); public images ask nothing more.
async fn signed_in(auth: &AuthClient, headers: &HeaderMap) -> Result<(), Response> {
    let token = photon_auth::guard::bearer(headers).map_err(|e| e.respond(false))?;
    auth.authenticate(&token).await.map(|_| ()).map_err(|e| e.respond(false))
}

async fn public_images(State((resources, auth)): State<(Resources, Arc<AuthClient>)>, headers: HeaderMap) -> Response {
    if let Err(refused) = signed_in(&auth, &headers).await {
        return refused;
    }
    let public = Owner::new(PUBLIC_ORG, PUBLIC_PROJECT);
    match resources.list_all::<Image>(&public, &[]).await {
        Ok(items) => Json(serde_json::json!({ "items": items })).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn public_image(
    State((resources, auth)): State<(Resources, Arc<AuthClient>)>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(refused) = signed_in(&auth, &headers).await {
        return refused;
    }
    match resources.get::<Image>(&Owner::new(PUBLIC_ORG, PUBLIC_PROJECT), &[], &name).await {
        Ok(image) => Json(image).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `PUT .../images/{name}/parts/{part}`: the body is the part (one declared without a URL),
/// stored in the platform bucket; the image answered, ready once every part is there.
async fn upload(
    State((resources, importer)): State<(Resources, Arc<Importer>)>,
    Path((org, project, name, part)): Path<(String, String, String, String)>,
    body: axum::body::Body,
) -> Response {
    let owner = Owner::new(org, project);
    let mut body = Some(body.into_data_stream());
    let outcome = async {
        let image: Resource<ImageSpec> = resources.get::<Image>(&owner, &[], &name).await?;
        importer.may_upload(&image, &part)?;
        let key = resources.layout().key(&owner, Image::PATH, &[], &name);
        let body = body.take().ok_or_else(|| ResourceError::Backend("the body was read twice".into()))?;
        importer.upload(&key, &image, &part, body).await?;
        resources.get::<Image>(&owner, &[], &name).await
    }
    .await;
    if let Some(unread) = body {
        // Refused before the body was read: read (and drop) a modest one anyway, so the client
        // hears the answer rather than a reset connection.
        let mut left = REFUSED_BODY_READ;
        let mut unread = unread;
        while let Some(Ok(chunk)) = futures_util::StreamExt::next(&mut unread).await {
            left = left.saturating_sub(chunk.len() as u64);
            if left == 0 {
                break;
            }
        }
    }
    match outcome {
        Ok(image) => (StatusCode::OK, Json(image)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// How much of a refused upload's body is read before the answer.
const REFUSED_BODY_READ: u64 = 64 << 20;

/// `start`, `stop`, `reboot` or `migrate`: the spec's power, reboot or migration count changed,
/// the VM answered.
async fn act(
    State(resources): State<Resources>,
    Path((org, project, name, action)): Path<(String, String, String, String)>,
    Query(query): Query<std::collections::HashMap<String, String>>,
) -> Response {
    let owner = Owner::new(org, project);
    let outcome = async {
        let current: Resource<VmSpec> = resources.get::<Vm>(&owner, &[], &name).await?;
        let mut spec = current.spec.clone();
        match action.as_str() {
            "start" => spec.power = Power::Running,
            "stop" => spec.power = Power::Stopped,
            "reboot" if spec.power == Power::Running => spec.reboots += 1,
            "reboot" => return Err(ResourceError::Precondition(format!("VM {name} is stopped; start it instead"))),
            "migrate" if spec.power == Power::Running => {
                spec.migrations += 1;
                spec.migrate_to = query.get("node").cloned();
            }
            "migrate" => return Err(ResourceError::Precondition(format!("VM {name} is stopped; only a running VM migrates"))),
            other => {
                return Err(ResourceError::from(FieldError::new(
                    "action",
                    format!("{other:?}: one of start, stop, reboot, migrate"),
                )));
            }
        }
        let version = Some(current.metadata.resource_version);
        resources.update::<Vm>(&owner, &[], &name, spec, version).await
    }
    .await;
    match outcome {
        Ok(vm) => (StatusCode::ACCEPTED, Json(vm)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Checks a VM against its project's flavours and images and the nodes' sizes.
pub struct VmChecks {
    pub cpu_overcommit: f64,
    pub memory_overcommit: f64,
    /// PrismNET, where NICs' subnets are looked up (None: no account; NICs are refused).
    pub network: Option<Network>,
    /// LightningStor, where volumes are looked up (None: no account; volumes are refused).
    pub storage: Option<Storage>,
}

impl VmChecks {
    async fn check(&self, at: Placing<'_>, spec: &VmSpec) -> Result<(), ResourceError> {
        let missing = |field: &str, what: &str, name: &str| {
            let owner = at.owner.path();
            ResourceError::from(FieldError::new(field, format!("{what} {name} does not exist in {owner}")))
        };
        let flavor: FlavorSpec = match at.resources.get::<Flavor>(at.owner, &[], &spec.flavor).await {
            Ok(found) => found.spec,
            Err(ResourceError::NotFound { .. }) => return Err(missing("spec.flavor", "flavor", &spec.flavor)),
            Err(e) => return Err(e),
        };
        let (image_owner, image_name) = crate::model::image::locate(at.owner, &spec.image);
        match at.resources.get::<Image>(&image_owner, &[], image_name).await {
            Ok(_) => {}
            Err(ResourceError::NotFound { .. }) => {
                let message = format!("image {image_name} does not exist in {}", image_owner.path());
                return Err(FieldError::new("spec.image", message).into());
            }
            Err(e) => return Err(e),
        }
        if !spec.nics.is_empty() {
            let Some(net) = &self.network else {
                return Err(FieldError::new(
                    "spec.nics",
                    "this PlasmaVMC has no service account for PrismNET (iam.credentials_file): VMs cannot have NICs here",
                )
                .into());
            };
            for (i, nic) in spec.nics.iter().enumerate() {
                net.check(at.owner, i, nic).await?;
            }
        }
        let volumes = spec.root_volume.iter().map(|v| ("spec.root_volume".to_string(), v)).chain(
            spec.volumes.iter().enumerate().map(|(i, v)| (format!("spec.volumes[{i}]"), v)),
        );
        for (field, volume) in volumes {
            let Some(storage) = &self.storage else {
                return Err(FieldError::new(
                    field,
                    "this PlasmaVMC has no service account for LightningStor (iam.credentials_file): VMs cannot have volumes here",
                )
                .into());
            };
            storage.check(at.owner, &field, volume).await?;
        }
        let registered = at.resources.store().list_all::<NodeRecord>(&nodes::records_prefix()).await?;
        let largest = registered.iter().map(|n| {
            let vcpus = (f64::from(n.value.vcpus) * self.cpu_overcommit).floor() as u64;
            let memory = (n.value.memory_mib as f64 * self.memory_overcommit).floor() as u64;
            (vcpus, memory)
        });
        let fits = |(vcpus, memory): (u64, u64)| vcpus >= u64::from(flavor.vcpus) && memory >= flavor.memory_mib;
        // With no node registered yet, the VM waits for one.
        if !registered.is_empty() && !largest.clone().any(fits) {
            let (vcpus, memory) = largest.fold((0, 0), |(c, m), (v, mm)| (c.max(v), m.max(mm)));
            return Err(FieldError::new(
                "spec.flavor",
                format!(
                    "flavor {} needs {} vCPUs and {} MiB; no node is that large (at most {vcpus} vCPUs and {memory} MiB)",
                    spec.flavor, flavor.vcpus, flavor.memory_mib
                ),
            )
            .into());
        }
        Ok(())
    }
}

impl Assign<Vm> for Arc<VmChecks> {
    fn assign<'a>(&'a self, at: Placing<'a>, spec: &'a mut VmSpec) -> Assigning<'a> {
        Box::pin(async move { self.check(at, spec).await })
    }

    fn updating<'a>(&'a self, at: Placing<'a>, spec: &'a mut VmSpec) -> Assigning<'a> {
        Box::pin(async move { self.check(at, spec).await })
    }
}
